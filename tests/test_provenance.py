"""Records older than data fingerprints: their corpus copy and superseded status come from
provenance.yaml; the report labels copies and lists superseded runs apart."""

import json
from pathlib import Path

import pytest
import yaml

from ser_tf.reporting.provenance import load_provenance, run_key
from ser_tf.reporting.records import iter_run_records
from ser_tf.reporting.report import render_report
from tests.test_records_report import config, experiments_with_references, write

REPO = Path(__file__).resolve().parents[1]

PROVENANCE = """
copies:
  emodb-2s: {{label: 2.00 s processed copy, description: "EMO-DB resampled, all 2.00 s"}}
  ravdess-trim: {{label: 2.39 s trimmed copy, description: "RAVDESS, all cut to 2.39 s"}}
runs:
  {old}: {{data: emodb-2s, superseded: "measured on the 2.00 s copy"}}
  {ravdess}: {{data: ravdess-trim}}
"""


def _records(tmp_path):
    experiments = experiments_with_references(tmp_path)
    results = experiments / "results"
    old = json.loads((write(results, protocol="paper-time") / "record.json").read_text())
    fingerprint = {"format": 1, "files": 535, "sample_rates": {"16000": 535},
                   "duration_s": {"min": 1.226, "median": 2.59, "max": 8.978},
                   "same_duration": False, "digest": "7912f6760cb70bd5",
                   "release": "original release"}
    new = json.loads((write(results, cfg=config(data=fingerprint), protocol="paper-time")
                      / "record.json").read_text())
    ravdess = json.loads((write(results, cfg={**config(), "paper": "timnet",
                                              "corpus": "RAVDESS"}) / "record.json").read_text())
    (results / "provenance.yaml").write_text(PROVENANCE.format(
        old=run_key(old), ravdess=run_key(ravdess)))
    return results, old, new, ravdess


def test_superseded_runs_leave_the_published_rows_and_are_listed_apart(tmp_path):
    results, old, new, _ = _records(tmp_path)
    text = render_report(results, paper="lightsernet")
    main, _, rest = text.partition("Superseded runs")
    ce = next(r for r in main.splitlines() if "loss=cross-entropy" in r)
    # Only the fingerprinted run sits beside the published figures, its data in the row.
    assert new["run_id"] in ce and old["run_id"] not in main.split("Sources:")[0]
    assert "535 files, 16 kHz, 1.23–8.98 s, original release (#7912f676)" in ce
    assert f"`{old['run_id']}`: measured on the 2.00 s copy" in rest
    row = next(r for r in rest.splitlines() if old["run_id"] in r and r.startswith("|"))
    assert "EMODB (2.00 s processed copy)" in row
    assert "- 2.00 s processed copy: EMO-DB resampled, all 2.00 s" in text
    assert "1 superseded" in text


def test_trimmed_copies_are_named_wherever_their_runs_appear(tmp_path):
    results, *_, ravdess = _records(tmp_path)
    text = render_report(results, paper="timnet")
    row = next(r for r in text.splitlines() if ravdess["run_id"] in r)
    cells = [c.strip() for c in row.strip("|").split("|")]
    # Its corpus cell names the copy, even where the row sits beside a published figure.
    assert cells[1] == "RAVDESS (2.39 s trimmed copy)" and cells[3] != "—"
    assert "Superseded" not in text


def test_fingerprinted_processed_copies_are_labelled_from_the_fingerprint():
    from ser_tf.reporting.provenance import NONE

    record = {"corpus": "EMODB", "config": {"data": {
        "files": 535, "sample_rates": {"22050": 535}, "same_duration": True,
        "duration_s": {"min": 2.0, "median": 2.0, "max": 2.0}, "digest": "ab",
        "release": "processed copy (535 of 535 files differ)"}}}
    assert NONE.corpus_of(record) == "EMODB (processed copy (535 of 535 files differ))"
    del record["config"]["data"]["release"]
    assert NONE.corpus_of(record) == "EMODB (all files 2.00 s)"
    # A class subset of the release (four of EMO-DB's seven emotions) is the release.
    subset = {"corpus": "EMODB", "config": {"data": {
        "files": 339, "sample_rates": {"16000": 339}, "same_duration": False,
        "duration_s": {"min": 1.43, "median": 2.59, "max": 8.98}, "digest": "cd",
        "release": "original release (339 of 535 files)"}}}
    assert NONE.corpus_of(subset) == "EMODB"
    assert NONE.data_cell({"corpus": "EMODB", "run_id": "x"}) == "not recorded"


def test_a_named_copy_labels_the_fingerprinted_runs_of_its_digest(tmp_path):
    (tmp_path / "provenance.yaml").write_text(
        "copies:\n  trim: {label: 2.39 s trimmed copy, description: RAVDESS cut to 2.39 s,"
        " digests: [3f98c7e0354278c1]}\n")
    provenance = load_provenance(tmp_path)
    data = {"files": 1434, "sample_rates": {"16000": 1434}, "same_duration": True,
            "duration_s": {"min": 2.389, "median": 2.389, "max": 2.389},
            "digest": "3f98c7e0354278c1", "release": "processed copy (1434 of 1440 files differ)"}
    record = {"paper": "cnn_family", "corpus": "RAVDESS", "run_id": "paper-x",
              "config": {"data": data}}
    assert provenance.corpus_of(record) == "RAVDESS (2.39 s trimmed copy)"
    assert provenance.copy_lines([record]) == ["- 2.39 s trimmed copy: RAVDESS cut to 2.39 s"]
    other = {**record, "config": {"data": {**data, "digest": "0000000000000000"}}}
    assert provenance.corpus_of(other) == "RAVDESS (processed copy (1434 of 1440 files differ))"
    assert provenance.copy_lines([other]) == []


@pytest.mark.parametrize("text,message", [
    ("copies: {}\nruns:\n  a/b: {data: nope}\n", "must be <paper>/<corpus>/<run-id>"),
    ("copies: {}\nruns:\n  a/b/c: {data: nope}\n", "'nope' is not one of the copies"),
    ("copies: {x: {label: l}}\n", "copy 'x' needs a 'label' and a 'description'"),
    ("runs:\n  a/b/c: {superseded: ''}\n", "needs a reason"),
    ("runs:\n  a/b/c: {why: x}\n", "its keys must be among data, superseded, partial"),
    ("copies: {x: {label: l, description: d, digests: 3}}\n", "'digests' must be a list"),
    ("other: 1\n", "'copies', 'runs' and 'records' only"),
    ("records: {bench/x.json: {data: nope}}\n", "record bench/x.json: needs 'data', one of"),
    ("copies: {x: {label: l, description: d}}\nrecords: {b.json: {data: x, why: 1}}\n",
     "at most a 'note'"),
    ("records: [1]\n", "must be mappings"),
    ("runs: [\n", "not valid YAML"),
])
def test_bad_provenance_files_are_refused_with_the_file_and_reason(tmp_path, text, message):
    (tmp_path / "provenance.yaml").write_text(text)
    with pytest.raises(ValueError, match=message) as err:
        load_provenance(tmp_path)
    assert "provenance.yaml" in str(err.value)


def test_every_committed_record_without_a_fingerprint_has_its_copy_recorded():
    """The project's own records: none measured before fingerprints may show up unlabelled,
    and every EMO-DB record of the 2.00 s copy is superseded."""
    results = REPO / "experiments" / "results"
    provenance = load_provenance(results)
    raw = yaml.safe_load((results / "provenance.yaml").read_text())
    for record in iter_run_records(results):
        if record["config"].get("data"):
            continue
        key = run_key(record)
        assert key in provenance.data, f"{key}: no fingerprint and no copy in provenance.yaml"
        if raw["runs"][key]["data"] == "emodb-2s":
            assert provenance.superseded_reason(record), f"{key} should be superseded"


def test_every_committed_benchmark_record_of_a_corpus_says_which_copy_it_read():
    """Benchmark and feature-timing records that read a corpus but store no fingerprint
    (written before fingerprints) have their copy in provenance.yaml's ``records``, and
    every path listed there exists."""
    results = REPO / "experiments" / "results"
    provenance = load_provenance(results)
    for name in provenance.records:
        assert (results / name).is_file(), f"provenance.yaml names a missing record {name}"
    unlabelled = []
    for path in sorted([*results.glob("bench/*.json"), *results.glob("features/*.json")]):
        record = json.loads(path.read_text())
        if record.get("corpus") and not record.get("data"):
            name = path.relative_to(results).as_posix()
            if name not in provenance.records:
                unlabelled.append(name)
    assert not unlabelled, f"no fingerprint and no copy in provenance.yaml: {unlabelled}"
    assert provenance.records["bench/timnet-emodb-2026-12-01.json"].label == \
        "2.00 s processed copy"


def test_committed_ravdess_runs_are_labelled_as_the_trimmed_copy():
    """The shared RAVDESS is a 2.39 s trimmed copy: every committed RAVDESS run says so,
    fingerprinted or not."""
    results = REPO / "experiments" / "results"
    provenance = load_provenance(results)
    runs = [r for r in iter_run_records(results) if r["corpus"] == "RAVDESS"]
    assert runs
    for record in runs:
        assert provenance.corpus_of(record) == "RAVDESS (2.39 s trimmed copy)", run_key(record)


def test_runs_in_progress_on_ravdess_will_be_labelled_as_the_trimmed_copy():
    """A run still training writes its record later: its fingerprint (in the work folder's
    config; the digest depends on how a paper names its utterances) must already be a
    known digest of the trimmed copy, or the record would be shown as an unknown copy."""
    results = REPO / "experiments" / "results"
    provenance = load_provenance(results)
    configs = sorted(results.glob("*/RAVDESS/*.work/config.json"))
    assert configs
    for path in configs:
        config = json.loads(path.read_text())
        if not config.get("data"):
            continue  # made before fingerprints: its record's copy is in provenance.yaml
        record = {"corpus": "RAVDESS", "config": config}
        assert provenance.corpus_of(record) == "RAVDESS (2.39 s trimmed copy)", path


def test_partial_runs_are_listed_apart_with_their_reason(tmp_path):
    """A run folder kept with some folds on purpose (an ablation) is not "in progress": the
    report lists it under its own heading with provenance.yaml's reason."""
    results, *_ = _records(tmp_path)
    work = results / "lightsernet" / "EMODB" / "speaker-abl.work"
    (work / "fold_00").mkdir(parents=True)
    (work / "folds.json").write_text(json.dumps({"folds": [{}, {}, {}]}))
    (work / "config.json").write_text(json.dumps({"protocol": "speaker"}))
    (work / "fold_00" / "result.json").write_text(json.dumps({"metrics": {"UA": 70.0}}))
    text = render_report(results, paper="lightsernet")
    assert "Runs in progress" in text and "`speaker-abl`" in text.split("Runs in progress")[1]
    provenance = results / "provenance.yaml"
    provenance.write_text(provenance.read_text() + "  lightsernet/EMODB/speaker-abl: "
                          "{partial: \"two folds only, an ablation\"}\n")
    text = render_report(results, paper="lightsernet")
    assert "Runs in progress" not in text
    _, _, partial = text.partition("Partial runs (some folds only, on purpose; no record):")
    # Light-SERNet's reference: a config without full_batches trained with partial batches.
    assert "`speaker-abl` (protocol speaker, full_batches False): 1/3 folds done; UA of the " \
        "finished folds 70.00 — two folds only, an ablation" in partial
    provenance.write_text(provenance.read_text().replace("two folds only, an ablation", " "))
    with pytest.raises(ValueError, match="'partial' needs a reason"):
        load_provenance(results)
