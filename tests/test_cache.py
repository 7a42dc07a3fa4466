"""Feature cache: keys, atomic entries, compute-once, invalidation, bad audio, AWGN copies."""

import hashlib
import json

import numpy as np
import pytest

from ser_tf.data import AudioError, load_manifest, read_audio
from ser_tf.data.synthetic import write_wav
from ser_tf.bench import features as bench
from ser_tf.features import cache
from ser_tf.features.augment import LeakageError
from ser_tf.features.cache import (cache_key, cache_path, content_hash, default_cache_dir,
                                   extract_augmented_features, extract_features)
from ser_tf.features.recipes import FeatureRecipe, get_recipe
import ser_tf.papers.lightsernet  # noqa: F401 (registers the "lightsernet" recipe)

NAMES = ["03a01Fa.wav", "03a01Wa.wav", "08a02Lb.wav", "08b10Wb.wav", "16a05Tc.wav", "16b01Nb.wav"]


def make_emodb(root, names=NAMES, duration=0.3):
    for i, name in enumerate(names):
        write_wav(root / "wav" / name, duration=duration, class_index=i, seed=i)
    return root


@pytest.fixture
def corpus(tmp_path):
    return make_emodb(tmp_path / "emodb")


@pytest.fixture
def recipe():
    return get_recipe("lightsernet")


@pytest.fixture
def compute_calls(monkeypatch):
    """Counts rows passed to FeatureRecipe.compute (the real compute still runs)."""
    calls = []
    original = FeatureRecipe.compute

    def counting(self, segments):
        calls.append(len(segments))
        return original(self, segments)

    monkeypatch.setattr(FeatureRecipe, "compute", counting)
    return calls


def entries(cache_dir):
    return sorted(p for p in cache_dir.rglob("*") if p.is_file())


def test_content_hash_is_sha256_of_bytes_in_any_chunk_size(tmp_path):
    path = write_wav(tmp_path / "a.wav", duration=0.2)
    expected = hashlib.sha256(path.read_bytes()).hexdigest()
    assert content_hash(path) == expected
    assert content_hash(path, chunk_size=7) == expected


def test_cache_key_depends_on_content_config_and_augmentation_only():
    config = {"name": "r", "sample_rate": 16000, "segment": {"kind": "none"}, "frontend": {"a": 1, "b": 2}}
    reordered = json.loads(json.dumps({"frontend": {"b": 2, "a": 1}, "segment": {"kind": "none"},
                                       "sample_rate": 16000, "name": "r"}))
    key = cache_key("h1", config)
    assert len(key) == 64 and key == cache_key("h1", reordered)
    assert key != cache_key("h2", config)
    assert key != cache_key("h1", {**config, "sample_rate": 8000})
    assert key != cache_key("h1", config, {"kind": "awgn", "copy": 0})
    copy0, copy1 = {"kind": "awgn", "copy": 0}, {"kind": "awgn", "copy": 1}
    assert cache_key("h1", config, copy0) != cache_key("h1", config, copy1)
    assert cache_path("/c", key).as_posix() == f"/c/{key[:2]}/{key}.npy"


def test_default_cache_dir_honours_env(monkeypatch, tmp_path):
    monkeypatch.setenv("SER_TF_CACHE", str(tmp_path / "x"))
    assert default_cache_dir() == tmp_path / "x"
    monkeypatch.delenv("SER_TF_CACHE")
    assert default_cache_dir().parts[-3:] == (".cache", "ser-tf", "features")


def test_second_run_computes_nothing_and_returns_the_same_features(corpus, recipe, tmp_path, compute_calls):
    manifest = load_manifest("EMODB", corpus)
    cache_dir = tmp_path / "cache"
    first = extract_features(manifest, recipe, cache_dir, batch_size=4)
    assert (first.stats["computed"], first.stats["cached"]) == (6, 0)
    assert compute_calls == [4, 2]
    assert first.ids == [u.utterance_id for u in manifest]
    assert list(first.labels) == manifest.label_indices
    assert first.label_names == manifest.labels and len(first.features) == 6
    assert first.stats["files_per_second"] > 0 and first.stats["seconds"] > 0
    # Entries live at <key[:2]>/<key>.npy with the key of (file content, recipe config).
    key = cache_key(content_hash(manifest[0].path), recipe.config())
    assert first.paths[0] == cache_path(cache_dir, key) and first.paths[0].is_file()
    assert [p.suffix for p in entries(cache_dir)] == [".npy"] * 6  # no temp files left
    # The cached row is what the recipe computes for that file.
    audio, _ = read_audio(manifest[0].path, sr=recipe.sample_rate)
    direct = recipe.compute(recipe.segment_audio(audio)[None])[0]
    np.testing.assert_allclose(first.features[0], direct, rtol=1e-5, atol=1e-5)

    compute_calls.clear()
    second = extract_features(manifest, recipe, cache_dir, batch_size=4)
    assert (second.stats["computed"], second.stats["cached"]) == (0, 6)
    assert compute_calls == []
    np.testing.assert_array_equal(second.features, first.features)
    lazy = extract_features(manifest, recipe, cache_dir, load=False)
    assert lazy.features is None and lazy.paths == first.paths


def test_changing_recipe_config_or_file_content_recomputes(corpus, recipe, tmp_path):
    manifest = load_manifest("EMODB", corpus)
    cache_dir = tmp_path / "cache"
    extract_features(manifest, recipe, cache_dir)
    changed = recipe.replace(segment={"duration": 2.0})
    assert extract_features(manifest, changed, cache_dir).stats["computed"] == 6
    write_wav(corpus / "wav" / NAMES[2], duration=0.3, class_index=5, seed=99)  # new content
    stats = extract_features(manifest, recipe, cache_dir).stats
    assert (stats["computed"], stats["cached"]) == (1, 5)


def test_unreadable_cache_entry_is_recomputed(corpus, recipe, tmp_path):
    manifest = load_manifest("EMODB", corpus)
    first = extract_features(manifest, recipe, tmp_path / "cache")
    first.paths[3].write_bytes(b"\x93NUMPY truncated")
    again = extract_features(manifest, recipe, tmp_path / "cache")
    assert (again.stats["computed"], again.stats["cached"]) == (1, 5)
    np.testing.assert_array_equal(again.features, first.features)


def test_bad_audio_names_the_file_and_keeps_earlier_features(corpus, recipe, tmp_path, compute_calls):
    manifest = load_manifest("EMODB", corpus)
    bad = corpus / "wav" / NAMES[3]
    bad.write_bytes(b"RIFF\x00\x00not really a wav file")  # broken after the manifest was built
    cache_dir = tmp_path / "cache"
    with pytest.raises(AudioError, match=NAMES[3]):
        extract_features(manifest, recipe, cache_dir, batch_size=2)
    # The three files before the bad one were saved, including the unfinished batch.
    assert len(entries(cache_dir)) == 3

    compute_calls.clear()
    skipped = extract_features(manifest, recipe, cache_dir, batch_size=2, on_bad_audio="skip")
    assert (skipped.stats["computed"], skipped.stats["cached"]) == (2, 3)
    assert sum(compute_calls) == 2
    assert [s["path"] for s in skipped.stats["skipped"]] == [str(bad)]
    assert manifest[3].utterance_id not in skipped.ids and len(skipped.features) == 5
    with pytest.raises(ValueError, match="on_bad_audio"):
        extract_features(manifest, recipe, cache_dir, on_bad_audio="ignore")


def test_awgn_copies_are_train_only_and_cached(corpus, recipe, tmp_path, compute_calls):
    manifest = load_manifest("EMODB", corpus)
    ids = [u.utterance_id for u in manifest]
    fold = dict(train_ids=ids[:4], val_ids=ids[4:5], test_ids=ids[5:])
    with pytest.raises(LeakageError):
        extract_augmented_features(manifest, recipe, tmp_path / "c", **{**fold, "train_ids": ids[:6]})
    assert not (tmp_path / "c").exists()  # refused before anything was computed

    copies = extract_augmented_features(manifest, recipe, tmp_path / "c", k=2, seed=1, **fold)
    assert copies.stats["computed"] == 8 and set(copies.source_ids) == set(ids[:4])
    assert copies.ids[:2] == [f"{ids[0]}+awgn0", f"{ids[0]}+awgn1"]
    assert not np.allclose(copies.features[0], copies.features[1])
    originals = extract_features(manifest, recipe, tmp_path / "c")
    assert originals.stats["computed"] == 6  # copies never shadow the clean entries
    assert not np.allclose(copies.features[0], originals.features[0])

    compute_calls.clear()
    again = extract_augmented_features(manifest, recipe, tmp_path / "c", k=2, seed=1, **fold)
    assert again.stats["cached"] == 8 and compute_calls == []
    np.testing.assert_array_equal(again.features, copies.features)
    reseeded = extract_augmented_features(manifest, recipe, tmp_path / "c", k=2, seed=2, **fold)
    assert reseeded.stats["computed"] == 8
    train = originals.concat(copies)
    assert len(train) == 14 and set(train.source_ids) == set(ids)  # originals of all + copies


def test_benchmark_record_on_a_tiny_corpus(corpus, recipe, tmp_path, monkeypatch):
    monkeypatch.setenv("SER_TF_CACHE", str(tmp_path / "user-cache"))
    out = tmp_path / "results" / "bench.json"
    assert bench.main(["--dataset", "EMODB", "--data-dir", str(corpus), "--recipe", "lightsernet",
                       "--out", str(out), "--batch-size", "4"]) == 0
    record = json.loads(out.read_text())
    assert record["recipe"] == recipe.config() and record["files"] == 6
    assert (record["cold"]["computed"], record["warm"]["cached"]) == (6, 6)
    assert record["cold"]["files_per_second"] > 0 and record["cpu"]["cpu_count"] >= 1
    assert record["versions"]["tensorflow"]
    assert not (tmp_path / "user-cache").exists()  # benchmark never touches the user's cache
    assert cache.FORMAT_VERSION >= 1
