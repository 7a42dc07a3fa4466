"""The committed READMEs' generated tables say what the committed run records say.

Each paper README holds its results table between ``<!-- report:PAPER:... -->`` markers
(the CNN family also a noise table); ``make readmes`` writes them from
``experiments/results``. A record committed without rewriting the table, or a number
edited by hand, fails here. The check is about commits: where ``experiments/results``
holds files git does not have (a benchmark writing there), it cannot tell a stale README
from a new fold and skips, saying so; CI runs on a clean clone.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from ser_tf.reporting.readme_blocks import block_diff, markers, read_block, rewrite_block

REPO = Path(__file__).resolve().parents[1]
RESULTS = "experiments/results"  # relative, as the make targets pass it (the tables name it)
PAPERS = sorted(p.parent.name for p in (REPO / "ser_tf" / "papers").glob("*/README.md")
                if markers("report", p.parent.name)[0] in p.read_text(encoding="utf-8"))
HINT = "rewrite the tables with `make readmes` and commit them with the records"


def test_block_is_rewritten_in_place_and_its_difference_shown(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- noise:demo:start -->\nold\n<!-- noise:demo:end -->\ntail\n")
    assert block_diff(readme, "noise", "demo", "new") == [
        f"--- {readme} (noise:demo, committed)", "+++ noise:demo from the records",
        "@@ -1 +1 @@", "-old", "+new"]
    assert rewrite_block(readme, "noise", "demo", "new\n")
    assert readme.read_text() == ("intro\n<!-- noise:demo:start -->\nnew\n"
                                  "<!-- noise:demo:end -->\ntail\n")
    assert read_block(readme, "noise", "demo") == "new"
    assert block_diff(readme, "noise", "demo", "new") == []
    assert not rewrite_block(readme, "noise", "demo", "new")  # unchanged: not written
    with pytest.raises(ValueError, match=r"README.md: needs the markers <!-- report:demo"):
        rewrite_block(readme, "report", "demo", "x")


#: What the tables are made of (records, fold results and scores, run settings, the corpus
#: copies); a training run's resume state (weights, backups, histories) is not read.
REPORT_INPUTS = ("record.json", "result.json", "tflite.json", "noise.json", "config.json",
                 "folds.json", "provenance.yaml")


@pytest.fixture(scope="module")
def committed_results():
    """Run from the repository with the report's inputs as committed, or skip saying why."""
    try:
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all",
                                 "--", RESULTS], cwd=REPO, capture_output=True, text=True)
    except OSError as error:
        pytest.skip(f"git cannot run ({error}): no committed records to compare")
    if status.returncode != 0:
        pytest.skip(f"not a git checkout ({status.stderr.strip()}): no committed records")
    changed = [line[3:] for line in status.stdout.splitlines()
               if line[3:].rsplit("/", 1)[-1] in REPORT_INPUTS]
    if changed:
        pytest.skip(f"{RESULTS} differs from the commit ({changed[0]}, {len(changed)} in "
                    "all): a run wrote there; the tables are checked against committed records")
    return REPO


def test_every_paper_has_a_generated_table():
    assert {"lightsernet", "timnet", "attention_fcn", "cnn_family", "semantic"} <= set(PAPERS)


@pytest.mark.parametrize("paper", PAPERS)
def test_paper_readme_table_is_what_the_committed_records_say(paper, committed_results,
                                                              monkeypatch):
    from ser_tf.reporting.report import render_report

    monkeypatch.chdir(committed_results)
    body = render_report(RESULTS, paper=paper).split("\n", 2)[2]
    readme = Path("ser_tf/papers") / paper / "README.md"
    diff = block_diff(readme, "report", paper, body)
    assert not diff, "\n".join([*diff, HINT])


def test_cnn_family_noise_table_is_what_the_committed_records_say(committed_results,
                                                                  monkeypatch):
    from ser_tf.papers.cnn_family import noise_report

    monkeypatch.chdir(committed_results)
    diff = block_diff("ser_tf/papers/cnn_family/README.md", *noise_report.BLOCK,
                      noise_report.render(RESULTS))
    assert not diff, "\n".join([*diff, HINT])
