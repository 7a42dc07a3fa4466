"""Where an attention model looks: α drawn over the input it was computed from.

For models with an :class:`~ser_tf.models.attention_fcn.AttentionPooling` layer (the
Attention-FCN family): α is one weight per position of the last feature map (H'×W' for a
spectrogram model, a few frequency positions for a 1-D one), each summarising a region of
the input. :func:`draw_attention_map` stretches the α grid over the input, every cell over
an equal share of the frames and bins it summarises (the receptive fields overlap, so this
is a coarse picture), and draws it over the spectrogram, with α summed over frequency
below it; for a 1-D input, over the spectrum.

- :func:`attention_of`: a Keras model's probabilities and α for a batch.
- :func:`export_explain_tflite`: the model as TFLite with two outputs, probabilities and
  α (float32 / float16: α of a fully quantised graph is not offered). The suite's
  classifier export (:func:`ser_tf.export.tflite.export_variants`, :class:`ser_tf.lite.
  LiteModel`) is single-output, so this "explain" model is a separate file; its sidecar
  names both outputs. :class:`ExplainLiteModel` runs it without TensorFlow.
- :func:`explain`: audio file + model (Keras, ``.keras`` or explain ``.tflite``) -> PNG.
- For figures of several maps: :func:`draw_attention_panel` (one map on given axes),
  :func:`alpha_time_profile` (α over normalised time, for averaging over utterances of
  different lengths) and :func:`real_frames` (where the audio ends in a padded input).

Figures use matplotlib's object API (no pyplot), as :mod:`ser_tf.reporting.plots`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

#: Output names in an explain model's sidecar, in the file's output order.
EXPLAIN_OUTPUTS = ("probabilities", "attention")
EXPLAIN_VARIANTS = ("float32", "float16")


def attention_of(model, inputs) -> tuple[np.ndarray, np.ndarray]:
    """``(probabilities, α)`` of a Keras model with an ``AttentionPooling`` layer."""
    from ser_tf.models.attention_fcn import explain_model

    probabilities, alpha = explain_model(model).predict(inputs, verbose=0)
    return np.asarray(probabilities), np.asarray(alpha)


def stretch(alpha, shape) -> np.ndarray:
    """The α grid (1-D or 2-D) over an input of ``shape`` (same rank): each cell repeated
    over its equal share of the positions along every axis."""
    alpha = np.asarray(alpha, dtype=float)
    if alpha.ndim != len(shape):
        raise ValueError(f"α of shape {alpha.shape} cannot cover an input of shape {shape}")
    index = np.ix_(*[np.minimum((np.arange(n) * cells) // n, cells - 1)
                     for n, cells in zip(shape, alpha.shape)])
    return alpha[index]


def draw_attention_map(features, alpha, out_png, *, frame_seconds: float = 0.01,
                       max_hz: float | None = None, title: str | None = None,
                       real_frames: int | None = None) -> Path:
    """``features`` (``(frames, bins)`` spectrogram, or a ``(bins,)`` spectrum) with ``α``
    (``(H', W')`` or ``(positions,)``, already cut to the real positions) drawn over it.
    ``real_frames``: frames of actual audio in a zero-padded fixed-length input (marked)."""
    from matplotlib.figure import Figure

    features = np.asarray(features, dtype=float)
    alpha = np.asarray(alpha, dtype=float)
    if alpha.max() <= 0:
        raise ValueError("α has no positive weight")
    if features.ndim == 1:
        fig = Figure(figsize=(8, 3.5), layout="constrained")
        ax = fig.add_subplot()
        top = max_hz or features.shape[0]
        ax.plot(np.linspace(0, top, features.shape[0], endpoint=False), features,
                color="black", linewidth=1)
        edges = np.linspace(0, top, alpha.size + 1)
        for weight, low, high in zip(alpha, edges[:-1], edges[1:]):
            ax.axvspan(low, high, color="tab:orange", alpha=0.1 + 0.6 * weight / alpha.max())
            ax.text((low + high) / 2, 0.95, f"α {weight:.2f}", ha="center", va="top",
                    transform=ax.get_xaxis_transform())
        ax.set(xlabel="frequency (Hz)" if max_hz else "band", ylabel="mean over frames",
               title=title or "α over the spectrum", xlim=(0, top))
        return _save(fig, out_png)
    fig = Figure(figsize=(9, 5.5), layout="constrained")
    ax_map, ax_time = fig.subplots(2, 1, sharex=True, height_ratios=(3, 1))
    overlay = draw_attention_panel(ax_map, ax_time, features, alpha,
                                   frame_seconds=frame_seconds, max_hz=max_hz,
                                   title=title or "attention map", real_frames=real_frames)
    fig.colorbar(overlay, ax=(ax_map, ax_time), pad=0.01, label="α per map position")
    return _save(fig, out_png)


def draw_attention_panel(ax_map, ax_time, features, alpha, *, frame_seconds: float = 0.01,
                         max_hz: float | None = None, title: str | None = None,
                         real_frames: int | None = None, vmax: float | None = None,
                         time_label: bool = True):
    """Draw a ``(frames, bins)`` spectrogram with its ``(H', W')`` α over it on ``ax_map``
    and α summed over frequency on ``ax_time`` (matplotlib axes sharing x, time in s).

    ``real_frames``: where the actual audio ends in a zero-padded fixed-length input (a
    dashed line). ``vmax``: the top of the α colour scale (several panels sharing one
    colour bar); default α's maximum. Returns the overlay image (for a colour bar).
    """
    from matplotlib.colors import Normalize

    features = np.asarray(features, dtype=float)
    alpha = np.asarray(alpha, dtype=float)
    if features.ndim != 2 or alpha.ndim != 2:
        raise ValueError(f"a panel takes a 2-D spectrogram and a 2-D α, got {features.shape} "
                         f"and {alpha.shape}")
    frames, bins = features.shape
    extent = (0, frames * frame_seconds, 0, max_hz or bins)
    weights = stretch(alpha, features.shape).T  # (bins, frames), as drawn
    ax_map.imshow(features.T, origin="lower", aspect="auto", cmap="gray_r", extent=extent)
    # Opacity follows α between its smallest and largest value, so the spectrogram shows
    # through everywhere; the colour bar gives the values (an untrained model's α is flat).
    spread = (weights - weights.min()) / max(weights.max() - weights.min(), 1e-12)
    overlay = ax_map.imshow(weights, origin="lower", aspect="auto", cmap="autumn_r",
                            extent=extent, alpha=0.15 + 0.5 * spread,
                            norm=Normalize(0.0, vmax if vmax else max(weights.max(), 1e-12)))
    ax_map.set(ylabel="frequency (Hz)" if max_hz else "bin", title=title or "attention map")
    rows = np.minimum(np.arange(frames) * alpha.shape[0] // frames, alpha.shape[0] - 1)
    ax_time.plot((np.arange(frames) + 0.5) * frame_seconds, alpha.sum(axis=1)[rows])
    if real_frames is not None and 0 < real_frames < frames:
        for ax in (ax_map, ax_time):
            ax.axvline(real_frames * frame_seconds, color="tab:blue", linestyle="--",
                       linewidth=1)
        ax_time.text(real_frames * frame_seconds, 0.95, " end of audio", va="top",
                     fontsize="small", color="tab:blue", transform=ax_time.get_xaxis_transform())
    ax_time.set(xlabel="time (s)", ylabel="α, summed over\nfrequency" if time_label else None,
                xlim=extent[:2])
    return overlay


def alpha_time_profile(alpha, frames: int, real_frames: int | None = None,
                       points: int = 100) -> np.ndarray:
    """α over normalised time: the ``(H', W')`` α of an input of ``frames`` frames, summed
    over frequency, spread evenly over the frames each row summarises, cut to the
    ``real_frames`` of actual audio (default all), renormalised to sum 1 there and sampled
    at ``points`` equally spaced instants of [0, 1] as a density (1 everywhere = uniform
    attention; 2 = twice the uniform share)."""
    alpha = np.asarray(alpha, dtype=float)
    per_row = alpha.reshape(alpha.shape[0], -1).sum(axis=1)
    rows = np.minimum(np.arange(frames) * per_row.size // frames, per_row.size - 1)
    counts = np.bincount(rows, minlength=per_row.size)
    per_frame = per_row[rows] / counts[rows]
    real = int(frames if real_frames is None else min(max(int(real_frames), 1), frames))
    per_frame = per_frame[:real]
    total = per_frame.sum()
    if total <= 0:
        raise ValueError("α has no weight on the real frames")
    density = per_frame / total * real
    where = np.minimum((np.linspace(0, 1, points, endpoint=False) + 0.5 / points) * real,
                       real - 1).astype(int)
    return density[where]


def _save(fig, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    return path


def export_explain_tflite(model, out_dir, *, labels, recipe, name: str,
                          variants=("float32",), extra: dict | None = None) -> dict[str, Path]:
    """``model`` (a fixed-shape features input, an ``AttentionPooling`` layer) as TFLite
    with outputs ``probabilities`` and ``attention`` (α), for each of ``variants``;
    ``<name>-<variant>.tflite`` plus a sidecar naming the outputs and the input's recipe
    (and ``extra``'s keys, e.g. where the weights came from). A model that also takes
    ``lengths`` (frames of the recording; zero padding after them, masked) keeps that
    input: the sidecar's input says ``"pad": "end"`` and ``"lengths_input"``."""
    from ser_tf.export.tflite import convert, keras_inputs
    from ser_tf.export.waveform import input_spec
    from ser_tf.models.attention_fcn import explain_model

    unknown = [v for v in variants if v not in EXPLAIN_VARIANTS]
    if unknown or not variants:
        raise ValueError(f"explain models are exported as {EXPLAIN_VARIANTS}, got {variants}")
    explainer = explain_model(model)
    inputs = dict(keras_inputs(explainer))
    lengths = [name for name, shape in inputs.items() if shape == ()]
    if len(inputs) - len(lengths) != 1 or len(lengths) > 1:
        raise ValueError(f"model {model.name}: explain models take one features input and "
                         f"optionally its lengths, got inputs {inputs}")
    input_name = next(name for name in inputs if name not in lengths)
    spec = {"name": input_name, **input_spec(recipe, "features", inputs[input_name])}
    if lengths:
        spec.update(pad="end", lengths_input=lengths[0])
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for variant in variants:
        content = convert(explainer, variant)
        path = out_dir / f"{name}-{variant}.tflite"
        _write_bytes(path, content)
        sidecar = {"name": name, "variant": variant, "labels": [str(x) for x in labels],
                   "input": spec, "outputs": list(EXPLAIN_OUTPUTS),
                   "attention_shape": [int(d) for d in explainer.output_shape[1][1:]],
                   "size_bytes": len(content), **dict(extra or {})}
        _write_bytes(path.with_suffix(".json"), (json.dumps(sidecar, indent=2) + "\n").encode())
        paths[variant] = path
    return paths


def _write_bytes(path: Path, data: bytes) -> None:
    # Atomic: a half-written model left by a kill would load as garbage later.
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


class ExplainLiteModel:
    """An :func:`export_explain_tflite` file run by a TFLite interpreter (no TensorFlow):
    ``predict(features)`` -> ``(probabilities, α)``."""

    def __init__(self, path, num_threads: int = 1):
        from ser_tf.lite.runtime import interpreter_class

        self.path = Path(path)
        sidecar = self.path.with_suffix(".json")
        if not sidecar.is_file():
            raise FileNotFoundError(f"{sidecar}: the explain model's sidecar is missing")
        self.metadata = json.loads(sidecar.read_text(encoding="utf-8"))
        if self.metadata.get("outputs") != list(EXPLAIN_OUTPUTS):
            raise ValueError(f"{sidecar}: not an explain model (outputs "
                             f"{self.metadata.get('outputs')})")
        self.labels = list(self.metadata["labels"])
        self.input = dict(self.metadata["input"])
        self._interpreter = interpreter_class()(model_path=str(self.path),
                                                num_threads=int(num_threads))
        self._runner = self._interpreter.get_signature_runner()

    def predict(self, features, lengths=None) -> tuple[np.ndarray, np.ndarray]:
        """``(probabilities, α)`` of ``(n, *input shape)`` features; a model taking lengths
        needs ``lengths`` (the frames of each row that hold the recording)."""
        features = np.asarray(features, dtype=np.float32)
        if features.shape[1:] != tuple(self.input["shape"]):
            raise ValueError(f"{self.path.name} takes (n, {self.input['shape']}), got "
                             f"{features.shape}")
        feeds = {self.input.get("name", "features"): features}
        if self.input.get("lengths_input"):
            if lengths is None:  # a guess (all frames) would score a short file's padding
                raise ValueError(f"{self.path.name} also takes the frames of each row that "
                                 "hold the recording: predict(features, lengths), see "
                                 ".inputs(audio_path)")
            feeds[self.input["lengths_input"]] = np.asarray(lengths, np.int32).reshape(-1)
        elif lengths is not None:
            raise ValueError(f"{self.path.name} takes no lengths input")
        outputs = self._runner(**feeds)
        rank = len(self.metadata["attention_shape"]) + 1
        alpha = next(v for v in outputs.values() if np.ndim(v) == rank
                     and tuple(np.shape(v)[1:]) == tuple(self.metadata["attention_shape"]))
        probabilities = next(v for v in outputs.values() if v is not alpha)
        return np.asarray(probabilities, np.float32), np.asarray(alpha, np.float32)

    @property
    def recipe(self):
        """The :class:`~ser_tf.features.recipes.FeatureRecipe` the sidecar describes."""
        from ser_tf.features.recipes import FeatureRecipe

        spec = self.input
        return FeatureRecipe(spec.get("recipe", "explain"), int(spec["sample_rate"]),
                             dict(spec["segment"]), dict(spec["frontend"]))

    def features(self, audio_path) -> tuple[np.ndarray, int]:
        """``(features, real_frames)`` of one recording as this model takes them (NumPy
        front-end, no TensorFlow): the recipe's segment of the file, and how many of its
        frames hold audio rather than the zero padding of a short file."""
        features, heard, _ = self.inputs(audio_path)
        return features, heard

    def inputs(self, audio_path) -> tuple[np.ndarray, int, int | None]:
        """:meth:`features` and the ``lengths`` value the model takes for the recording
        (the frames the front-end makes of its samples; ``None`` for a model without that
        input)."""
        from ser_tf.data.audio import read_audio
        from ser_tf.features.spectral import numpy_features
        from ser_tf.lite.inputs import frames_of

        recipe = self.recipe
        audio = read_audio(audio_path, sr=recipe.sample_rate)[0]
        segment = recipe.segment_audio(audio)
        features = numpy_features(segment[None], recipe.sample_rate, recipe.frontend)[0]
        lengths = None
        if self.input.get("lengths_input"):
            lengths = frames_of(min(audio.size, segment.size), self.input, features.shape[0])
        return features, real_frames(audio.size, recipe, features.shape[0]), lengths


def real_frames(samples: int, recipe, frames: int) -> int:
    """Frames of a ``frames``-frame input (``recipe``'s segment) that start within a
    recording of ``samples`` samples, i.e. hold some of it rather than only zero padding:
    where the audio ends, in frames."""
    offset = int(round(float(recipe.segment.get("offset", 0.0) or 0.0) * recipe.sample_rate))
    left = max(int(samples) - offset, 0)
    step = int(recipe.frontend.get("frame_step", 160))
    return int(min(frames, -(-left // step)))


def _as_recipe(recipe):
    from ser_tf.features.recipes import FeatureRecipe, get_recipe

    if recipe is None:
        raise ValueError("a Keras model needs the recipe its features come from")
    if isinstance(recipe, FeatureRecipe):
        return recipe
    if isinstance(recipe, str):
        return get_recipe(recipe)
    return FeatureRecipe(**dict(recipe))


def explain(audio_path, model, out_png, *, recipe=None, labels=None,
            title: str | None = None) -> dict:
    """Classify one recording and draw where the model looked (PNG at ``out_png``).

    ``model``: a Keras model (or ``.keras`` file) with an ``AttentionPooling`` layer, then
    ``recipe`` (a :class:`~ser_tf.features.recipes.FeatureRecipe`, a registered name or a
    recipe config) says how its features are computed; or an explain ``.tflite``
    (:func:`export_explain_tflite`), whose sidecar says it. A model taking ``lengths``
    gets the whole recording; one taking a vector gets the features' mean over frames.
    Returns ``{"png", "label", "probabilities" {label: p}, "attention"}``.
    """
    from ser_tf.data.audio import read_audio

    heard = None  # frames of actual audio in a fixed-length (zero-padded) input
    if isinstance(model, (str, os.PathLike)) and str(model).endswith(".tflite"):
        lite = ExplainLiteModel(model)
        recipe = lite.recipe
        features, heard, lengths = lite.inputs(audio_path)
        probabilities, alpha = lite.predict(features[None], None if lengths is None
                                            else [lengths])
        labels = lite.labels
    else:
        import keras

        import ser_tf.models.attention_fcn  # noqa: F401  (registers the layers for loading)

        if not isinstance(model, keras.Model):
            model = keras.saving.load_model(model, compile=False)
        from ser_tf.lite.inputs import frames_of

        recipe = _as_recipe(recipe)
        audio = read_audio(audio_path, sr=recipe.sample_rate)[0]
        segment = recipe.segment_audio(audio)
        features = np.asarray(recipe.compute(segment[None]))[0]
        names = [t.name for t in model.inputs]
        if len(model.inputs[0].shape) == 2:  # a vector per example: the mean spectrum
            features = features.mean(axis=0)
        inputs = {names[0]: features[None]}
        if "lengths" in names:  # the frames of the recording; any padding after them
            spec = {"sample_rate": recipe.sample_rate, "frontend": recipe.frontend}
            inputs["lengths"] = np.asarray(
                [frames_of(min(audio.size, segment.size), spec, features.shape[0])], np.int32)
        probabilities, alpha = attention_of(model, inputs if len(names) > 1 else features[None])
    probabilities, alpha = probabilities[0], alpha[0]
    labels = list(labels) if labels is not None else [f"class_{i}" for i in
                                                      range(len(probabilities))]
    best = int(np.argmax(probabilities))
    front = recipe.frontend
    # A linear-frequency spectrogram gets a Hz axis; mel and other bands their bin index.
    max_hz = (front.get("max_hz") or recipe.sample_rate / 2) \
        if front.get("kind") == "spectrogram" else None
    png = draw_attention_map(
        features, alpha, out_png, max_hz=max_hz,
        frame_seconds=float(front.get("frame_step", 160)) / recipe.sample_rate,
        real_frames=heard if features.ndim == 2 else None,
        title=title or f"{Path(audio_path).name}: {labels[best]} ({probabilities[best]:.2f})")
    return {"png": png, "label": labels[best],
            "probabilities": {label: float(p) for label, p in zip(labels, probabilities)},
            "attention": alpha}
