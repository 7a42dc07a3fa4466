"""A deployable model that takes audio: the recipe's front-end layer + the feature model.

``build_waveform_model(feature_model, recipe)`` puts the same
:mod:`ser_tf.features.frontends` layer that computed the training features (built by
``build_frontend(recipe.frontend, recipe.sample_rate)``) in front of the trained
classifier, so the exported ``.tflite`` maps ``(batch, samples)`` float32 audio to class
probabilities. The front-end uses TFLite builtin ops only (``frontends.py`` docstring), so
the graph converts without Flex ops.

What stays OUTSIDE the graph: segmentation, i.e. the recipe's ``segment_audio``, and with
it any per-segment normalisation the recipe's segmentation does (e.g. the generic
``crop_normalise_pad`` kind, :mod:`ser_tf.features.segment`: centre crop, divide by the
99.9th percentile of |x| (+1e-6) and clip to [-1, 1], then zero-pad symmetrically). The
model's input is that result. Such a percentile normalisation could be written with
builtins (TOPK_V2 over |x| gives the order statistics; np.percentile interpolates linearly
between two of them), but it is computed on the crop BEFORE padding: a 2 s clip is
normalised by the percentile of its 32000 samples, not of the 48000 padded ones the graph
would see. An in-graph version would therefore differ for every clip shorter than the
segment, so the normalisation stays in NumPy preprocessing (:mod:`ser_tf.features.segment`
imports only NumPy, so the TF-free runtime, :mod:`ser_tf.lite`, can run it) and there is
one definition of it. The sidecar states what a runtime must do to each window
(``input.normalise``: the recipe's ``window_normalisation()``).

Precision: convert a waveform model as ``float32`` or ``float16`` only. Measured on a
seeded fully convolutional MFCC classifier (1 s input, softmax sharpened to trained-like
margins), 24 generated clips, max |probability difference| vs the Keras pipeline / argmax
agreement: float32 1.8e-7 / 100 %, float16 3.4e-4 / 100 %, dynamic_int8 0.11 / 67 %,
int8 0.16 / 58 %. Dynamic-range kernels quantise their float inputs to int8 on the fly,
here the |STFT| entering the mel matmul, whose range spans decades before the log;
full-integer int8 additionally quantises the audio input itself to 256 levels (RFFT2D and
LOG have no int8 kernels and stay float between QUANTIZE / DEQUANTIZE). For a small
quantised model, ship the ``int8`` or ``dynamic_int8`` FEATURE model and compute the
features outside it.
:func:`ser_tf.export.tflite.export_variants` warns when asked otherwise.
"""

from __future__ import annotations

import keras

from ser_tf.features.frontends import TF_KINDS, build_frontend


def recipe_samples(recipe) -> int:
    """Fixed number of samples the recipe's segmentation produces (no fixed length: error,
    since there is then no fixed waveform input to export)."""
    return recipe.num_samples()


def build_waveform_model(feature_model: keras.Model, recipe, *,
                         name: str | None = None) -> keras.Model:
    """``(batch, samples)`` float32 audio, already segmented by ``recipe.segment_audio``
    -> the feature model's output (a 3 s recipe at 16 kHz: 48000 samples).

    The feature model is used as-is (its weights are shared, not copied). Raises
    ``ValueError`` if the recipe's front-end cannot be a layer (``librosa_mfcc``: use
    ``recipe.replace(frontend={"kind": "mfcc"})``, the same parameters in TF, <= 1e-3
    from librosa) or if its feature shape differs from the model's input.
    """
    if not isinstance(feature_model, keras.Model):
        raise TypeError(f"feature_model must be a keras.Model, got {type(feature_model).__name__}")
    kind = recipe.frontend.get("kind")
    if kind not in TF_KINDS:
        raise ValueError(f"recipe {recipe.name}: front-end kind {kind!r} cannot run inside a "
                         f"graph; one of {TF_KINDS} can")
    samples = recipe_samples(recipe)
    frontend = build_frontend(recipe.frontend, recipe.sample_rate)
    feature_shape = tuple(frontend.compute_output_shape((None, samples))[1:])
    expected = tuple(feature_model.input_shape[1:])
    if feature_shape != expected:
        raise ValueError(f"recipe {recipe.name} gives features {feature_shape} for {samples} "
                         f"samples, but {feature_model.name} takes {expected}")
    audio = keras.Input((samples,), name="waveform")
    outputs = feature_model(frontend(audio))
    return keras.Model(audio, outputs, name=name or f"{feature_model.name}_waveform")


def input_spec(recipe, kind: str, shape) -> dict:
    """The sidecar's ``input`` entry for a model on this recipe's ``kind`` input
    (``"features"`` or ``"waveform"``), saying how to prepare that input: segmentation,
    window normalisation (``normalise``, null for none) and, for features, the front-end."""
    if kind not in ("features", "waveform"):
        raise ValueError(f"kind must be 'features' or 'waveform', got {kind!r}")
    spec = {"kind": kind, "sample_rate": int(recipe.sample_rate),
            "samples": recipe_samples(recipe), "shape": [int(d) for d in shape],
            "recipe": recipe.name, "segment": dict(recipe.segment),
            "normalise": recipe.window_normalisation()}
    if kind == "features":
        spec["frontend"] = dict(recipe.frontend)
    else:
        spec["preprocessing"] = (f"the recipe's segmentation (segment kind "
                                 f"{recipe.segment['kind']!r}) before the model, each "
                                 "inference window normalised as 'normalise' says; the "
                                 "front-end is inside the graph")
    return spec
