"""Semantic + paralinguistic fusion for continuous emotion (Tzirakis, Nguyen, Zafeiriou &
Schuller, "Speech Emotion Recognition using Semantic Information", ICASSP 2021,
arXiv:2103.02993; official TF1 code: glam-imperial/semantic_speech_emotion_recognition).

One step per 0.1 s frame. Inputs: ``audio`` (batch, T, frame_len): the frame's raw samples
(SEWA at 22.05 kHz: 2205 of the subject and 2205 of the partner, 4410 values, only the half
of whoever is speaking filled), and ``words`` (batch, T): the id of the word spoken during
the frame (0: none). Output (batch, T, n_outputs): arousal, valence, liking in [-1, 1].

- paralinguistic branch, **per frame**: 1-D convolutions 50 filters k8 → max-pool 10,
  125 k6 → pool 5, 250 k6 → pool 5 (ReLU, "same" padding, dropout 0.5 after each pool: the
  official code), then a fully connected layer of ``audio_fc`` = 1024 units (ReLU);
- semantic branch: the word's embedding (300-d; word2vec or aligned speech2vec vectors in
  the paper, ``embedding_matrix`` here), id 0 gives the zero vector (the official code's
  frames without a word), then a fully connected layer to the same 1024 units;
- attention fusion (:class:`ModalityAttention`): per frame, a score ``(w·x_m + b)/√d`` for
  each modality vector ``x_m``, softmax over the modalities, weighted sum. The official
  code then splits the fused vector into three 512-unit streams (fully connected, ReLU)
  and fuses them again with the same attention, (s1, s2) then (·, s3): kept here
  (``stream_units``);
- ``lstm_layers`` LSTM layers of ``lstm_units`` (2 × 256 as the brief of this
  reproduction states the paper; the official code has one 256-unit LSTM with peepholes
  and cell clipping, which Keras' LSTM lacks), then a linear layer and tanh per frame.

Chosen here (the paper is silent or the code differs):

- The official code runs its convolutions over the whole sequence of frames laid end to
  end and reshapes the result back to frames, so a frame's features leak into its
  neighbours' (and 4410 samples do not divide into whole pooled positions per frame). Here
  the convolutions see one frame at a time (:class:`FramesToBatch`), so every step before
  the LSTM is a function of its own frame only: padding or cutting a recording into chunks
  changes nothing before the LSTM, and chunked inference is exact (:func:`predict_recording`).
- The fusion never stacks more than the two (or three) vectors of one frame: memory is
  O(batch · T · modalities · d). (A published TF2 port built a (T_total, 2, 1, 512)
  tensor over a whole corpus at once and ran out of memory.)
- Variants for the paper's ablation: ``"fusion"`` (both), ``"audio"`` and ``"text"`` (one
  branch; the attention over a single vector is the identity, so it is left out; the
  three-stream block and the LSTM stay, so only the modalities differ).
- Padding: frames past a recording's end sit after its real frames and the LSTM runs
  forwards, so they cannot change the real frames' outputs (tested); the loss ignores
  them through the per-frame mask.
"""

from __future__ import annotations

import math
from typing import Sequence

import keras
import numpy as np
from keras import layers, ops

#: The paper's paralinguistic convolutions: (filters, kernel, max-pool size) per layer.
CONV_FILTERS = (50, 125, 250)
CONV_KERNELS = (8, 6, 6)
CONV_POOLS = (10, 5, 5)
VARIANTS = ("fusion", "audio", "text")
#: The layer names :func:`predict_recording` relies on.
LSTM_NAME, OUTPUT_NAME = "lstm_{}", "emotion"


@keras.saving.register_keras_serializable(package="ser_tf")
class FramesToBatch(layers.Layer):
    """``(batch, T, frame_len)`` -> ``(batch·T, frame_len, 1)``: every frame becomes one
    example of the convolutions, so they never see a neighbouring frame."""

    def call(self, frames):
        return ops.reshape(frames, (-1, ops.shape(frames)[-1], 1))

    def compute_output_shape(self, input_shape):
        return (None, input_shape[-1], 1)


@keras.saving.register_keras_serializable(package="ser_tf")
class BatchToFrames(layers.Layer):
    """``[x (batch·T, ...), reference (batch, T, ...)]`` -> ``(batch, T, features)``: the
    per-frame features back in sequence order, flattened."""

    def call(self, inputs):
        x, reference = inputs
        shape = ops.shape(reference)
        features = int(np.prod(x.shape[1:]))
        return ops.reshape(x, (shape[0], shape[1], features))

    def compute_output_shape(self, input_shape):
        x_shape, reference_shape = input_shape
        return (reference_shape[0], reference_shape[1], int(np.prod(x_shape[1:])))


@keras.saving.register_keras_serializable(package="ser_tf")
class FrameWordEmbedding(layers.Layer):
    """``(batch, T)`` word ids -> ``(batch, T, dim)`` vectors; id 0 (no word in the frame)
    gives exactly the zero vector, whatever training does to row 0."""

    def __init__(self, vocab_size: int, dim: int = 300, **kwargs):
        super().__init__(**kwargs)
        if int(vocab_size) < 2 or int(dim) < 1:
            raise ValueError(f"vocab_size must be >= 2 (0 pad, 1 unknown) and dim >= 1, got "
                             f"{vocab_size}, {dim}")
        self.vocab_size, self.dim = int(vocab_size), int(dim)

    def build(self, input_shape):
        self.embeddings = self.add_weight(
            shape=(self.vocab_size, self.dim), name="embeddings",
            initializer=keras.initializers.RandomUniform(-0.05, 0.05))

    def call(self, words):
        ids = ops.cast(words, "int32")
        present = ops.expand_dims(ops.cast(ids > 0, self.compute_dtype), -1)
        return ops.take(self.embeddings, ids, axis=0) * present

    def compute_output_shape(self, input_shape):
        return (*input_shape, self.dim)

    def get_config(self):
        return {**super().get_config(), "vocab_size": self.vocab_size, "dim": self.dim}


@keras.saving.register_keras_serializable(package="ser_tf")
class ModalityAttention(layers.Layer):
    """Attention over modalities, frame by frame (the paper's fusion, as the official code
    computes it): for K inputs ``x_m`` of shape (batch, T, d),

        e_m = (w·x_m + b) / √d,   α_m = softmax_m(e),   out = Σ_m α_m x_m

    with one ``w`` (d values) and ``b`` shared by the modalities. Only the K scores of each
    frame are formed (no (K, d) stack, no cross-frame tensor): memory is linear in T.
    ``return_weights=True`` returns ``[out, α (batch, T, K)]``."""

    def __init__(self, return_weights: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.return_weights = bool(return_weights)

    def build(self, input_shape):
        shapes = [tuple(s) for s in input_shape]
        if len(shapes) < 2 or len({s[-1] for s in shapes}) != 1:
            raise ValueError(f"ModalityAttention needs >= 2 inputs of one feature size, got "
                             f"{shapes}")
        self.dim = int(shapes[0][-1])
        self.score = self.add_weight(shape=(self.dim, 1), name="score",
                                     initializer="glorot_uniform")
        self.bias = self.add_weight(shape=(1,), name="bias", initializer="zeros")

    def call(self, inputs):
        scale = 1.0 / math.sqrt(self.dim)
        scores = [(ops.matmul(x, self.score) + self.bias) * scale for x in inputs]  # (b,T,1)
        top = scores[0]
        for s in scores[1:]:
            top = ops.maximum(top, s)
        exps = [ops.exp(s - top) for s in scores]
        total = exps[0]
        for e in exps[1:]:
            total = total + e
        out = exps[0] / total * inputs[0]
        for e, x in zip(exps[1:], inputs[1:]):
            out = out + e / total * x
        if self.return_weights:
            return [out, ops.concatenate([e / total for e in exps], axis=-1)]
        return out

    def compute_output_shape(self, input_shape):
        out = tuple(input_shape[0])
        if self.return_weights:
            return [out, (*out[:-1], len(input_shape))]
        return out

    def get_config(self):
        return {**super().get_config(), "return_weights": self.return_weights}


def _check(variant, frame_len, conv_filters, conv_kernels, conv_pools, lstm_layers, n_outputs):
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    if not (len(conv_filters) == len(conv_kernels) == len(conv_pools)) or not conv_filters:
        raise ValueError("conv_filters, conv_kernels and conv_pools need one entry per layer, "
                         f"got {conv_filters}, {conv_kernels}, {conv_pools}")
    if int(frame_len) < int(np.prod(conv_pools)):
        raise ValueError(f"frame_len {frame_len} is shorter than the pools' total "
                         f"{int(np.prod(conv_pools))}: no position would remain")
    if int(lstm_layers) < 1 or int(n_outputs) < 1:
        raise ValueError(f"lstm_layers and n_outputs must be >= 1, got {lstm_layers}, "
                         f"{n_outputs}")


def build_semantic_fusion(*, vocab_size: int = 2, frame_len: int = 4410,
                          embedding_dim: int = 300, embedding_matrix=None,
                          trainable_embeddings: bool = True, variant: str = "fusion",
                          conv_filters: Sequence[int] = CONV_FILTERS,
                          conv_kernels: Sequence[int] = CONV_KERNELS,
                          conv_pools: Sequence[int] = CONV_POOLS, dropout: float = 0.5,
                          audio_fc: int = 1024, attention_units: int | None = None,
                          stream_units: int | None = 512, lstm_units: int = 256,
                          lstm_layers: int = 2, n_outputs: int = 3,
                          name: str = "semantic_fusion") -> keras.Model:
    """The model of the module docstring; every default is the paper's (or the official
    code's) value. Inputs ``audio`` (batch, None, frame_len) float32 and ``words``
    (batch, None) int32, given as a dict (a single-modality variant takes only its own
    input, still as a dict); output (batch, None, n_outputs).

    ``embedding_matrix`` (vocab_size, embedding_dim): initial word vectors (row 0 is
    ignored: no word is the zero vector); ``trainable_embeddings=False`` freezes them.
    ``attention_units``: size both modalities are projected to before the fusion (default
    ``audio_fc``: the code's 1024). ``stream_units=None`` drops the three-stream block.
    """
    _check(variant, frame_len, conv_filters, conv_kernels, conv_pools, lstm_layers, n_outputs)
    attention_units = int(attention_units or audio_fc)
    inputs, branches = {}, []
    if variant in ("fusion", "audio"):
        audio = keras.Input((None, int(frame_len)), name="audio")
        inputs["audio"] = audio
        x = FramesToBatch(name="frames_to_batch")(audio)
        for i, (filters, kernel, pool) in enumerate(zip(conv_filters, conv_kernels,
                                                        conv_pools), 1):
            x = layers.Conv1D(int(filters), int(kernel), padding="same", activation="relu",
                              name=f"conv_{i}")(x)
            x = layers.MaxPooling1D(int(pool), int(pool), name=f"pool_{i}")(x)
            x = layers.Dropout(dropout, name=f"conv_dropout_{i}")(x)
        x = BatchToFrames(name="batch_to_frames")([x, audio])
        branches.append(layers.Dense(attention_units, activation="relu", name="audio_fc")(x))
    if variant in ("fusion", "text"):
        words = keras.Input((None,), dtype="int32", name="words")
        inputs["words"] = words
        embedding = FrameWordEmbedding(int(vocab_size), int(embedding_dim),
                                       trainable=bool(trainable_embeddings),
                                       name="word_embedding")
        x = embedding(words)
        if embedding_matrix is not None:
            matrix = np.asarray(embedding_matrix, dtype=np.float32)
            if matrix.shape != (int(vocab_size), int(embedding_dim)):
                raise ValueError(f"embedding_matrix has shape {matrix.shape}, expected "
                                 f"({vocab_size}, {embedding_dim}) (vocab_size, embedding_dim)")
            embedding.set_weights([matrix])
        branches.append(layers.Dense(attention_units, activation="relu", name="text_fc")(x))
    x = branches[0] if len(branches) == 1 else ModalityAttention(name="fusion")(branches)
    if stream_units:
        streams = [layers.Dense(int(stream_units), activation="relu", name=f"stream_{i}")(x)
                   for i in (1, 2, 3)]
        x = ModalityAttention(name="stream_attention_12")(streams[:2])
        x = ModalityAttention(name="stream_attention_123")([x, streams[2]])
    for i in range(1, int(lstm_layers) + 1):
        x = layers.LSTM(int(lstm_units), return_sequences=True, name=LSTM_NAME.format(i))(x)
    outputs = layers.Dense(int(n_outputs), activation="tanh", name=OUTPUT_NAME)(x)
    # A dict even for one input: every variant is called the same way, {"audio": ...}.
    return keras.Model(inputs, outputs, name=f"{name}_{variant}")


def model_input_names(model: keras.Model) -> list[str]:
    """The names of the model's inputs (``audio``, ``words``, or both)."""
    return [t.name.split(":")[0] for t in model.inputs]


def _lstm_layers(model: keras.Model) -> list:
    found, i = [], 1
    while True:
        try:
            found.append(model.get_layer(LSTM_NAME.format(i)))
        except ValueError:
            return found
        i += 1


def streaming_model(model: keras.Model, chunk_frames: int | None = None) -> keras.Model:
    """The same network with its LSTM state as inputs and outputs, for inference chunk by
    chunk: inputs are the model's (``audio``, ``words``; ``chunk_frames`` frames, or any
    number with ``None``) plus ``h_k``/``c_k`` (batch, lstm_units) per LSTM layer; outputs
    ``emotion`` (batch, chunk, n_outputs) and the new ``h_k``/``c_k``. Zero states start a
    recording; feeding each chunk the previous chunk's states gives the unchunked outputs.
    Shares the weights of ``model`` (no copy)."""
    lstms = _lstm_layers(model)
    if not lstms:
        raise ValueError(f"model {model.name} has no layer named {LSTM_NAME.format(1)!r}: "
                         "not built by build_semantic_fusion")
    inputs = {}
    for name, tensor in model.input.items():
        shape = (chunk_frames, *tensor.shape[2:])
        inputs[name] = keras.Input(shape, dtype=tensor.dtype, name=name)
    encoder = keras.Model(model.input, lstms[0].input, name="frame_encoder")
    x = encoder(inputs)
    outputs = {}
    for k, lstm in enumerate(lstms, 1):
        units = int(lstm.units)
        h_in = keras.Input((units,), name=f"h_{k}")
        c_in = keras.Input((units,), name=f"c_{k}")
        inputs[f"h_{k}"], inputs[f"c_{k}"] = h_in, c_in
        # The trained layer's own cell in a recurrent layer that also returns its final
        # state: the weights are shared, not copied.
        stateful = layers.RNN(lstm.cell, return_sequences=True, return_state=True,
                              name=f"{lstm.name}_stateful")
        x, h, c = stateful(x, initial_state=[h_in, c_in])
        outputs[f"h_{k}"], outputs[f"c_{k}"] = h, c
    outputs[OUTPUT_NAME] = model.get_layer(OUTPUT_NAME)(x)
    return keras.Model(inputs, outputs, name=f"{model.name}_streaming")


def zero_states(stream: keras.Model, batch: int = 1) -> dict:
    """``h_k``/``c_k`` zero arrays for the start of a recording."""
    return {t.name.split(":")[0]: np.zeros((batch, int(t.shape[-1])), np.float32)
            for t in stream.inputs if t.name.split(":")[0][:2] in ("h_", "c_")}


def predict_recording(model: keras.Model, audio_frames=None, words=None, *,
                      chunk_frames: int = 100) -> np.ndarray:
    """The model's per-frame outputs (T, n_outputs) for a whole recording of any length, in
    bounded memory: the recording is read ``chunk_frames`` frames at a time and the LSTMs'
    state is carried from chunk to chunk (:func:`streaming_model`), so the result is the
    unchunked model's (every step before the LSTM depends on its own frame only; tested to
    float tolerance).

    ``audio_frames``: anything of shape (T, frame_len) that slices (a NumPy array, a
    memmap, an object with ``__len__`` and ``__getitem__(slice)`` making frames on demand);
    ``words``: (T,) ids. Give those the model takes. Peak memory grows with
    ``chunk_frames`` (about 1.5 MB a frame at the paper's sizes), not with T.
    """
    import tensorflow as tf

    if int(chunk_frames) < 1:
        raise ValueError(f"chunk_frames must be >= 1, got {chunk_frames}")
    names = model_input_names(model)
    given = {"audio": audio_frames, "words": words}
    missing = [n for n in names if given[n] is None]
    if missing:
        raise ValueError(f"the model takes {names}; missing {missing}")
    lengths = {n: len(given[n]) for n in given if given[n] is not None}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"audio_frames and words must have one length (frames), got {lengths}")
    total = next(iter(lengths.values()))
    stream = streaming_model(model)
    step = tf.function(lambda feed: stream(feed, training=False), reduce_retracing=True)
    states = zero_states(stream)
    out = np.zeros((total, int(model.get_layer(OUTPUT_NAME).units)), np.float32)
    for start in range(0, total, int(chunk_frames)):
        stop = min(start + int(chunk_frames), total)
        feed = dict(states)
        if "audio" in names:
            feed["audio"] = np.asarray(given["audio"][start:stop], np.float32)[None]
        if "words" in names:
            feed["words"] = np.asarray(given["words"][start:stop], np.int32)[None]
        result = step(feed)
        states = {k: v for k, v in result.items() if k != OUTPUT_NAME}
        out[start:stop] = np.asarray(result[OUTPUT_NAME])[0]
    return out
