"""The default model is the best one ``--ship`` made (ser_tf.lite.catalog)."""

import json

import pytest

from ser_tf.lite import catalog, predict


def _ship(folder, stem, *, ua=None, protocol="speaker", variant="float32", kind="features"):
    (folder / f"{stem}.tflite").write_bytes(b"model")
    sidecar = {"name": stem, "variant": variant, "input": {"kind": kind}}
    if ua is not None:
        sidecar["expected_accuracy"] = {"protocol": protocol, "run_id": f"run-{stem}",
                                        "folds": 10, "UA": {"mean": ua, "std": 1.0}}
    (folder / f"{stem}.json").write_text(json.dumps(sidecar))


def test_best_is_the_highest_expected_ua_on_new_speakers(tmp_path):
    _ship(tmp_path, "a-emodb-mfcc-float32", ua=70.0)
    _ship(tmp_path, "a-emodb-waveform-float32", ua=70.0, kind="waveform")
    _ship(tmp_path, "b-emodb-mfcc-float32", ua=75.0)
    _ship(tmp_path, "b-emodb-mfcc-int8", ua=75.0, variant="int8")  # a smaller copy: not ranked
    _ship(tmp_path, "c-emodb-mfcc-float32", ua=99.0, protocol="paper")  # not new speakers
    _ship(tmp_path, "d-emodb-mfcc-float32")  # one fold's export: no expected accuracy
    (tmp_path / "e-broken.tflite").write_bytes(b"x")
    (tmp_path / "e-broken.json").write_text("{not json")
    rows = catalog.shipped_models(tmp_path)
    assert [r["path"].stem for r in rows] == ["b-emodb-mfcc-float32", "a-emodb-waveform-float32",
                                               "a-emodb-mfcc-float32"]
    assert catalog.best_shipped_model(tmp_path).stem == "b-emodb-mfcc-float32"
    assert catalog.best_shipped_model(tmp_path / "nothing-here") is None


def test_default_model_prefers_the_best_shipped_then_the_default_name(tmp_path, monkeypatch):
    monkeypatch.delenv(predict.MODEL_ENV, raising=False)
    monkeypatch.setattr(predict, "MODELS_DIR", tmp_path)
    _ship(tmp_path, predict.DEFAULT_MODEL_NAME[: -len(".tflite")])  # no expected accuracy
    assert predict.default_model_path().name == predict.DEFAULT_MODEL_NAME
    _ship(tmp_path, "timnet-emodb-mfcc-float32", ua=80.0)
    assert predict.default_model_path().name == "timnet-emodb-mfcc-float32.tflite"
    monkeypatch.setenv(predict.MODEL_ENV, str(tmp_path / predict.DEFAULT_MODEL_NAME))
    assert predict.default_model_path().name == predict.DEFAULT_MODEL_NAME  # asked for


def test_no_model_at_all_names_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.delenv(predict.MODEL_ENV, raising=False)
    monkeypatch.setattr(predict, "MODELS_DIR", tmp_path)
    with pytest.raises(predict.ModelNotFoundError, match=predict.DEFAULT_MODEL_NAME):
        predict.default_model_path()
