"""Evaluation protocols: determinism, no leakage, speaker independence, paper splits."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.model_selection import KFold

from ser_tf.data.manifest import Manifest, Utterance
from ser_tf.papers.lightsernet.folds import CODE_SPEAKER_SPLIT as CODE_SPEAKER
from ser_tf.papers.lightsernet.folds import PAPER_SEED as LIGHTSERNET_PAPER_SEED
from ser_tf.papers.lightsernet.folds import SPLIT as LIGHTSERNET
from ser_tf.papers.timnet.folds import PAPER_SEEDS as TIMNET_PAPER_SEEDS
from ser_tf.papers.timnet.folds import SPLIT as TIMNET
from ser_tf.training.protocols import (
    Fold, check_folds, folds_digest, load_folds, paper_protocol_warning, save_folds)
from ser_tf.training.protocols import make_folds as shared_make_folds


def make_folds(manifest, protocol, **kwargs):
    """The shared make_folds, with Light-SERNet's split for the paper protocols unless a
    test names another."""
    kwargs.setdefault("paper_split", LIGHTSERNET)
    return shared_make_folds(manifest, protocol, **kwargs)

LABELS = ("anger", "boredom", "neutral", "sadness")


def corpus(n=120, n_speakers=6, name="EMODB", seed=0) -> Manifest:
    rng = np.random.default_rng(seed)
    # Imbalanced labels so stratification matters.
    labels = rng.choice(len(LABELS), size=n, p=[0.4, 0.3, 0.2, 0.1])
    utts = [Utterance(f"u{i:04d}", f"/x/u{i:04d}.wav", LABELS[labels[i]],
                      f"spk{i % n_speakers:02d}", name) for i in range(n)]
    return Manifest(name, LABELS, utts)


def iemocap(per_speaker=6) -> Manifest:
    utts = []
    for s in range(1, 6):
        for dialog_gender in "FM":
            for gender in "FM":
                for k in range(per_speaker):
                    utts.append(Utterance(f"Ses0{s}{dialog_gender}_impro0{k % 3}_{gender}{k:03d}",
                                          "p", LABELS[k % 4], f"Ses0{s}{gender}", "IEMOCAP",
                                          extra={"session": s}))
    return Manifest("IEMOCAP", LABELS, utts)


def as_ids(folds):
    return [(f.train_ids, f.val_ids, f.test_ids) for f in folds]


@pytest.mark.parametrize("protocol", ["paper", "clean", "speaker"])
def test_same_seed_same_folds_different_seed_different(protocol):
    m = corpus()
    n = 3 if protocol == "speaker" else 5  # grouped k-fold: the seed shuffles the groups
    a = make_folds(m, protocol, n_folds=n, seed=7)
    b = make_folds(m, protocol, n_folds=n, seed=7)
    c = make_folds(m, protocol, n_folds=n, seed=8)
    assert as_ids(a) == as_ids(b)
    assert folds_digest(a) == folds_digest(b)
    assert as_ids(a) != as_ids(c)
    assert folds_digest(a) != folds_digest(c)


@pytest.mark.parametrize("protocol,kwargs", [("paper", {}), ("paper", {"paper_split": TIMNET}),
                                             ("clean", {}), ("speaker", {}),
                                             ("speaker", {"n_folds": 3})])
def test_no_leakage_and_test_folds_partition(protocol, kwargs):
    m = corpus()
    folds = make_folds(m, protocol, seed=3, **kwargs)
    all_ids = {u.utterance_id for u in m}
    tested = []
    for f in folds:
        train, val, test = set(f.train_ids), set(f.val_ids), set(f.test_ids)
        assert not train & test and not train & val
        if protocol == "paper":
            assert f.selection_on_test and val == test
            assert train | test == all_ids
        else:
            assert not f.selection_on_test and not val & test
            assert train | val | test == all_ids
        tested.extend(f.test_ids)
    assert sorted(tested) == sorted(all_ids)  # every utterance tested exactly once


def test_clean_folds_are_stratified_with_validation_fraction():
    m = corpus(n=400)
    folds = make_folds(m, "clean", n_folds=10, seed=1, val_fraction=0.1)
    label_of = {u.utterance_id: u.label for u in m}
    overall = np.array([m.counts()[name] for name in LABELS]) / len(m)
    for f in folds:
        test = np.array([[label_of[i] for i in f.test_ids].count(name) for name in LABELS])
        assert np.allclose(test / test.sum(), overall, atol=0.03)
        pool = len(f.train_ids) + len(f.val_ids)
        assert len(f.val_ids) == round(0.1 * pool)


def speakers(m, ids):
    by_id = {u.utterance_id: u.speaker for u in m}
    return {by_id[i] for i in ids}


@pytest.mark.parametrize("n_folds", [None, 10, 3])
def test_speaker_folds_never_share_a_speaker(n_folds):
    m = corpus(n_speakers=8)
    folds = make_folds(m, "speaker", n_folds=n_folds, seed=0)
    assert len(folds) == (8 if n_folds in (None, 10) else 3)
    for f in folds:
        tr, va, te = speakers(m, f.train_ids), speakers(m, f.val_ids), speakers(m, f.test_ids)
        assert not tr & va and not tr & te and not va & te
        assert va and set(f.val_groups) == va and set(f.test_groups) == te
    if n_folds in (None, 10):  # leave-one-speaker-out, in speaker order
        assert [f.test_groups for f in folds] == [[f"spk{i:02d}"] for i in range(8)]


def test_iemocap_is_leave_one_session_out():
    m = iemocap()
    folds = make_folds(m, "speaker", seed=0)
    assert len(folds) == 5
    session_of = {u.utterance_id: u.extra["session"] for u in m}
    for k, f in enumerate(folds, start=1):
        assert {session_of[i] for i in f.test_ids} == {k}
        assert len(f.test_ids) == sum(1 for u in m if u.extra["session"] == k)
        assert f.test_groups == [f"Session{k}"]
        # validation = whole training speakers, none from the test session
        assert k not in {session_of[i] for i in f.val_ids}
        assert not speakers(m, f.val_ids) & speakers(m, f.train_ids)


def test_paper_timnet_equals_sklearn_kfold_over_the_authors_file_order():
    m = corpus(n=535, n_speakers=10)  # EMO-DB has 535 utterances
    folds = make_folds(m, "paper", paper_split=TIMNET)  # seed from TIMNET_PAPER_SEEDS
    assert TIMNET_PAPER_SEEDS["EMODB"] == 46
    # The authors' feature file: class by class (anger, boredom, ..., sadness), names in
    # order inside a class; KFold splits positions in that file.
    rows = sorted(m, key=lambda u: (LABELS.index(u.label), u.utterance_id))
    expected = list(KFold(n_splits=10, shuffle=True, random_state=46).split(np.zeros(535)))
    assert len(folds) == 10
    for f, (train, test) in zip(folds, expected):
        assert set(f.test_ids) == {rows[i].utterance_id for i in test}
        assert set(f.train_ids) == {rows[i].utterance_id for i in train}
        assert f.val_ids == f.test_ids and f.selection_on_test
    other = make_folds(m, "paper", paper_split=TIMNET, seed=45)
    assert as_ids(other) != as_ids(folds)
    # Light-SERNet's paper folds keep the manifest order.
    plain = make_folds(m, "paper", paper_split=LIGHTSERNET, seed=46)
    ids = np.array([u.utterance_id for u in m])
    assert [f.test_ids for f in plain] == [list(ids[t]) for _, t in expected]


def test_timnet_paper_folds_do_not_depend_on_the_listing_order():
    # RAVDESS-like: files in actor folders; the authors' class folders mix actors, so the
    # file name alone orders a class ("...-02.wav" of actor 2 before "...-10.wav").
    from ser_tf.data import get_corpus
    from ser_tf.papers.timnet.authors_features import AUTHORS_CLASS_ORDER, authors_file_order
    labels = tuple(get_corpus("RAVDESS").labels)
    assert labels != AUTHORS_CLASS_ORDER["RAVDESS"]  # ours: neutral, calm, happiness, ...
    utts = [Utterance(f"a{a:02d}_{e}_{k}", f"/r/Actor_{a:02d}/03-01-0{e}-01-0{k}-01-{a:02d}.wav",
                      labels[e - 1], f"{a:02d}", "RAVDESS")
            for a in (10, 2, 1) for e in (4, 2, 1, 3) for k in (1, 2)]
    shuffled = Manifest("RAVDESS", labels, utts)
    listed = Manifest("RAVDESS", labels, sorted(utts, key=lambda u: u.path))
    a = make_folds(shuffled, "paper", paper_split=TIMNET, n_folds=4)
    b = make_folds(listed, "paper", paper_split=TIMNET, n_folds=4)
    assert [set(f.test_ids) for f in a] == [set(f.test_ids) for f in b]
    order = [listed[i] for i in authors_file_order(listed)]
    # Classes in the authors' order (anger, calm, ..., sadness), not ours.
    seen = list(dict.fromkeys(u.label for u in order))
    assert seen == [c for c in AUTHORS_CLASS_ORDER["RAVDESS"] if c in seen]
    # Inside a class: by file name, actors 01, 02, 10 of statement 1, then of statement 2.
    first = [u.utterance_id for u in order if u.label == seen[0]]
    e = labels.index(seen[0]) + 1
    assert first == [f"a{a:02d}_{e}_{k}" for k in (1, 2) for a in (1, 2, 10)]


def test_timnet_file_order_on_emodb_labels_puts_neutral_before_sadness():
    # Our EMO-DB label order ends sadness, neutral; the authors' file ends neutral, sad.
    from ser_tf.data import get_corpus
    from ser_tf.papers.timnet.authors_features import authors_file_order
    labels = tuple(get_corpus("EMODB").labels)
    assert labels.index("sadness") < labels.index("neutral")
    utts = [Utterance(f"03a0{k}{c}a", f"/e/03a0{k}{c}a.wav", label, "03", "EMODB")
            for k in (2, 1) for c, label in zip("WLEAFTN", labels)]
    m = Manifest("EMODB", labels, utts)
    order = [m[i] for i in authors_file_order(m)]
    assert [u.label for u in order][-4:] == ["neutral", "neutral", "sadness", "sadness"]
    assert [u.utterance_id for u in order][:2] == ["03a01Wa", "03a02Wa"]


def test_paper_seed_defaults():
    m = corpus(name="RAVDESS")
    assert as_ids(make_folds(m, "paper", paper_split=TIMNET)) == \
        as_ids(make_folds(m, "paper", paper_split=TIMNET, seed=46))
    assert as_ids(make_folds(m, "paper")) == as_ids(make_folds(m, "paper",
                                                               seed=LIGHTSERNET_PAPER_SEED))
    with pytest.raises(ValueError, match="seed"):
        make_folds(corpus(name="TESS"), "paper", paper_split=TIMNET)


def test_lightsernet_speaker_style_groups_like_released_code():
    folds = make_folds(corpus(n_speakers=10), "paper", paper_split=CODE_SPEAKER)
    assert len(folds) == 10 and all(f.selection_on_test for f in folds)
    m = iemocap()
    folds = make_folds(m, "paper", paper_split=CODE_SPEAKER)
    # one fold per dialog prefix Ses0xF / Ses0xM (not per speaker)
    assert [f.test_groups[0] for f in folds] == [f"Ses0{s}{g}" for s in range(1, 6) for g in "FM"]
    assert all({i[:6] for i in f.test_ids} == set(f.test_groups) for f in folds)


def test_save_load_roundtrip_and_digest(tmp_path):
    folds = make_folds(corpus(), "speaker", seed=2)
    path = save_folds(folds, tmp_path / "sub" / "folds.json", metadata={"corpus": "EMODB"})
    loaded = load_folds(path)
    assert [f.to_dict() for f in loaded] == [f.to_dict() for f in folds]
    assert folds_digest(loaded) == folds_digest(folds)
    record = json.loads(path.read_text())
    record["folds"][0]["test_ids"].pop()
    path.write_text(json.dumps(record))
    with pytest.raises(ValueError, match="digest"):
        load_folds(path)


def test_fold_dict_roundtrip():
    f = Fold(3, ["a"], ["b"], ["c"], False, test_groups=["s1"])
    assert Fold.from_dict(f.to_dict()) == f
    with pytest.raises(ValueError):
        Fold.from_dict({"index": 0})


def test_check_folds_catches_leakage():
    m = corpus(n=20)
    ids = [u.utterance_id for u in m]
    leaky = [Fold(0, ids[:15], ids[14:16], ids[16:], False)]
    with pytest.raises(AssertionError, match="leak"):
        check_folds(leaky, m, partition=False)
    not_partition = [Fold(0, ids[:10], ids[10:12], ids[12:], False)]
    with pytest.raises(AssertionError, match="cover"):
        check_folds(not_partition, m)
    fake_paper = [Fold(0, ids[:10], ids[10:12], ids[10:], True)]
    with pytest.raises(AssertionError, match="selection_on_test"):
        check_folds(fake_paper, m, partition=False)


def test_paper_warning_only_for_paper():
    text = paper_protocol_warning("paper")
    assert "test fold" in text and "optimistic" in text
    assert paper_protocol_warning("clean") is None
    assert paper_protocol_warning("speaker") is None
    # The last epoch's weights: no selection on the test fold, only the original folds.
    last = paper_protocol_warning("paper", "last")
    assert "nothing was chosen" in last and "optimistic" not in last
    assert paper_protocol_warning("paper", "last", patience=5) == text  # early stopping chose
    assert paper_protocol_warning("paper", "best-val") == text
    assert paper_protocol_warning("speaker", "last") is None
    with pytest.raises(ValueError):
        paper_protocol_warning("bogus")


def test_bad_inputs():
    m = corpus()
    with pytest.raises(ValueError, match="protocol"):
        make_folds(m, "random")
    with pytest.raises(ValueError, match="n_folds"):
        make_folds(m, "clean", n_folds=1)
    with pytest.raises(ValueError, match="val_fraction"):
        make_folds(m, "clean", val_fraction=0)
    with pytest.raises(ValueError, match="seed"):
        make_folds(m, "clean", seed=-1)
    with pytest.raises(ValueError, match="3 speakers"):
        make_folds(corpus(n_speakers=2), "speaker")
    with pytest.raises(TypeError):
        make_folds([], "clean")


def test_paper_time_pairs_are_the_authors_draw():
    # np.random.seed(42); np.random.permutation(list(combinations(range(10), 2)))[:10] in the
    # Light-SERNet code of October 2021: parts 2 and 8 are never tested, 5 and 6 four times.
    from ser_tf.papers.lightsernet.folds import paper_time_pairs

    assert paper_time_pairs() == [(6, 7), (3, 5), (3, 6), (7, 9), (5, 6), (6, 9), (0, 5),
                                  (1, 5), (0, 9), (0, 4)]
    with pytest.raises(ValueError, match="45 pairs"):
        paper_time_pairs(46)


def test_paper_time_tests_pairs_of_parts_and_selects_on_test():
    m = corpus(n=535)
    folds = make_folds(m, "paper-time")
    assert len(folds) == 10
    sizes = [len(f.test_ids) for f in folds]
    assert all(106 <= s <= 108 for s in sizes)  # two of ten parts of 535: 53 or 54 each
    for fold in folds:
        assert fold.selection_on_test and fold.val_ids == fold.test_ids
        assert len(fold.train_ids) + len(fold.test_ids) == 535
        assert not set(fold.train_ids) & set(fold.test_ids)
        assert len(fold.test_groups) == 2 and all(g.startswith("part") for g in fold.test_groups)
    # Parts are contiguous blocks of one shuffled order: folds sharing a part share its ids.
    by_pair = {tuple(f.test_groups): set(f.test_ids) for f in folds}
    shared = by_pair[("part6", "part7")] & by_pair[("part3", "part6")]
    assert 53 <= len(shared) <= 54
    tested = {i for f in folds for i in f.test_ids}
    # The seeded pairs never draw parts 2 and 8: their 106-108 utterances are never tested.
    assert not any({"part2", "part8"} & set(f.test_groups) for f in folds)
    assert 535 - 108 <= len(tested) <= 535 - 106
    assert as_ids(folds) == as_ids(make_folds(m, "paper-time"))
    assert "overlap" in paper_protocol_warning("paper-time")


def test_paper_time_needs_enough_utterances():
    with pytest.raises(ValueError, match="at least 20"):
        make_folds(corpus(n=12), "paper-time")


def test_check_folds_allows_overlapping_tests_only_when_told():
    m = corpus(n=200)
    folds = make_folds(m, "paper-time")
    with pytest.raises(AssertionError, match="already tested"):
        check_folds(folds, m, partition=False)
    check_folds(folds, m, partition=False, disjoint_tests=False)


def test_a_papers_own_protocol_needs_its_split():
    m = corpus()
    with pytest.raises(ValueError, match="pass the paper's PaperSplit"):
        shared_make_folds(m, "paper")
    with pytest.raises(ValueError, match=r"offers \['paper'\]"):
        shared_make_folds(m, "paper-time", paper_split=TIMNET)
    # The shared protocols need none.
    assert len(shared_make_folds(m, "clean", n_folds=3)) == 3
