"""The semantic-fusion model (Tzirakis et al., ICASSP 2021): shapes, the per-frame attention
fusion, padding, memory linear in the sequence length, saving, chunked inference."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from ser_tf.models.semantic_fusion import (FrameWordEmbedding, ModalityAttention,
                                           build_semantic_fusion, model_input_names,
                                           predict_recording)

#: A small model of the same structure (the paper's sizes make every test slow).
SMALL = dict(frame_len=250, conv_filters=(4, 6, 8), conv_kernels=(8, 6, 6),
             conv_pools=(5, 5, 2), audio_fc=16, stream_units=12, lstm_units=8,
             embedding_dim=10, vocab_size=30)


def _inputs(rng, batch, frames, frame_len=250, vocab=30):
    return {"audio": rng.standard_normal((batch, frames, frame_len)).astype("float32"),
            "words": rng.integers(0, vocab, (batch, frames)).astype("int32")}


def test_paper_model_has_the_papers_layers_and_takes_any_length():
    model = build_semantic_fusion(vocab_size=50)
    assert model_input_names(model) == ["audio", "words"]
    conv = [model.get_layer(f"conv_{i}") for i in (1, 2, 3)]
    assert [c.filters for c in conv] == [50, 125, 250]
    assert [c.kernel_size[0] for c in conv] == [8, 6, 6]
    assert [model.get_layer(f"pool_{i}").pool_size[0] for i in (1, 2, 3)] == [10, 5, 5]
    assert model.get_layer("audio_fc").units == 1024
    assert [model.get_layer(f"lstm_{i}").units for i in (1, 2)] == [256, 256]
    rng = np.random.default_rng(0)
    for frames in (1, 3):
        x = _inputs(rng, 1, frames, 4410, 50)
        assert model(x).shape == (1, frames, 3)


@pytest.mark.parametrize("variant,names", [("fusion", ["audio", "words"]),
                                           ("audio", ["audio"]), ("text", ["words"])])
def test_variants_take_their_own_inputs(variant, names):
    model = build_semantic_fusion(variant=variant, **SMALL)
    assert model_input_names(model) == names
    assert ("fusion" in [layer.name for layer in model.layers]) == (variant == "fusion")
    x = _inputs(np.random.default_rng(1), 2, 5)
    out = model({k: x[k] for k in names})
    assert out.shape == (2, 5, 3)
    assert np.all(np.abs(np.asarray(out)) <= 1.0)  # tanh outputs


def test_bad_settings_are_refused_with_the_reason():
    with pytest.raises(ValueError, match="variant"):
        build_semantic_fusion(variant="video", **SMALL)
    with pytest.raises(ValueError, match="shorter than the pools"):
        build_semantic_fusion(**{**SMALL, "frame_len": 20})
    with pytest.raises(ValueError, match="embedding_matrix has shape"):
        build_semantic_fusion(embedding_matrix=np.zeros((5, 10)), **SMALL)


def test_no_word_frames_get_the_zero_vector_and_the_matrix_is_used():
    matrix = np.arange(30 * 10, dtype="float32").reshape(30, 10) + 1.0  # row 0 non-zero
    model = build_semantic_fusion(embedding_matrix=matrix, trainable_embeddings=False,
                                  **SMALL)
    layer = model.get_layer("word_embedding")
    assert not layer.trainable
    vectors = np.asarray(layer(np.array([[0, 3, 0, 29]])))
    np.testing.assert_array_equal(vectors[0, 0], 0.0)
    np.testing.assert_array_equal(vectors[0, 2], 0.0)
    np.testing.assert_array_equal(vectors[0, 1], matrix[3])
    np.testing.assert_array_equal(vectors[0, 3], matrix[29])


def test_modality_attention_is_a_softmax_weighted_sum_per_frame():
    rng = np.random.default_rng(2)
    a, b = (rng.standard_normal((2, 4, 6)).astype("float32") for _ in range(2))
    layer = ModalityAttention(return_weights=True)
    out, alpha = (np.asarray(t) for t in layer([a, b]))
    w, bias = (np.asarray(v) for v in layer.get_weights())
    scores = np.stack([(x @ w)[..., 0] + bias[0] for x in (a, b)], -1) / np.sqrt(6)
    expected = np.exp(scores) / np.exp(scores).sum(-1, keepdims=True)
    np.testing.assert_allclose(alpha, expected, rtol=1e-5)
    np.testing.assert_allclose(alpha.sum(-1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(out, alpha[..., :1] * a + alpha[..., 1:] * b, rtol=1e-5,
                               atol=1e-6)
    # Equal modality vectors: the fusion returns that vector whatever the weights.
    np.testing.assert_allclose(np.asarray(ModalityAttention()([a, a])), a, rtol=1e-5)
    with pytest.raises(ValueError, match="one feature size"):
        ModalityAttention()([a, rng.standard_normal((2, 4, 5)).astype("float32")])


def test_padding_at_the_end_does_not_change_the_real_frames():
    model = build_semantic_fusion(**SMALL)
    rng = np.random.default_rng(3)
    short = _inputs(rng, 1, 6)
    alone = np.asarray(model(short))
    padded = {"audio": np.concatenate([short["audio"], np.zeros((1, 4, 250), "float32")], 1),
              "words": np.concatenate([short["words"], np.zeros((1, 4), "int32")], 1)}
    longer = _inputs(rng, 1, 10)
    batch = {k: np.concatenate([padded[k], longer[k]]) for k in padded}
    np.testing.assert_allclose(np.asarray(model(batch))[0, :6], alone[0], atol=1e-6)


def _graph_tensor_sizes(model, batch, frames, frame_len):
    """Element counts of every tensor the inference graph makes for (batch, frames)."""
    spec = {"audio": tf.TensorSpec((batch, frames, frame_len), tf.float32),
            "words": tf.TensorSpec((batch, frames), tf.int32)}
    graph = tf.function(lambda x: model(x, training=False)).get_concrete_function(spec).graph
    sizes = []
    for op in graph.get_operations():
        for out in op.outputs:
            if out.shape.rank is not None and out.shape.is_fully_defined():
                sizes.append(int(np.prod(out.shape.as_list())))
    return sizes


def test_memory_of_the_fusion_is_linear_in_the_number_of_frames():
    # Every tensor of the graph is per frame or per weight: the total grows by the same
    # amount from T to 2T as from 2T to 3T (no T² term), and no tensor is larger than a
    # batch's frames times the largest per-frame activation (no cross-frame blow-up).
    model = build_semantic_fusion(**SMALL)
    totals, largest = [], []
    for frames in (8, 16, 24):
        sizes = _graph_tensor_sizes(model, 2, frames, 250)
        totals.append(sum(sizes))
        largest.append(max(sizes))
    assert totals[2] - totals[1] == totals[1] - totals[0] > 0
    per_frame = 250 * max(SMALL["conv_filters"])
    assert largest[2] <= 2 * 24 * per_frame


def test_saved_model_loads_with_the_same_outputs(tmp_path):
    model = build_semantic_fusion(**SMALL)
    x = _inputs(np.random.default_rng(4), 2, 5)
    path = tmp_path / "semantic.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_allclose(np.asarray(loaded(x)), np.asarray(model(x)), atol=1e-6)
    embedding = FrameWordEmbedding.from_config(model.get_layer("word_embedding").get_config())
    assert (embedding.vocab_size, embedding.dim) == (30, 10)
    assert ModalityAttention.from_config(
        ModalityAttention(return_weights=True).get_config()).return_weights


@pytest.mark.parametrize("variant", ["fusion", "audio", "text"])
def test_chunked_inference_equals_the_whole_sequence(variant):
    model = build_semantic_fusion(variant=variant, **SMALL)
    x = _inputs(np.random.default_rng(5), 1, 23)
    names = model_input_names(model)
    whole = np.asarray(model({k: x[k] for k in names}))[0]
    for chunk in (1, 5, 23, 40):
        chunked = predict_recording(model, x["audio"][0], x["words"][0], chunk_frames=chunk)
        np.testing.assert_allclose(chunked, whole, atol=2e-6)
    with pytest.raises(ValueError, match="one length"):
        predict_recording(model, x["audio"][0], x["words"][0][:5])


@pytest.mark.slow
def test_a_thirty_minute_recording_runs_in_bounded_memory():
    """30 minutes of 0.1 s frames (303 MB of input, made on demand) through a shrunken
    model in chunks: memory after the first chunk must not grow with the recording
    (``python -m ser_tf.bench.semantic_memory`` measures the paper-sized model)."""
    from ser_tf.bench.semantic_memory import measure

    result = measure(18000, 200, vocab=40, model_kwargs={
        "conv_filters": [4, 4, 4], "audio_fc": 16, "stream_units": 8, "lstm_units": 8,
        "embedding_dim": 8})
    assert result["shape"] == [18000, 3] and result["finite"]
    # Whole at once, the input alone is 303 MB (2**20 bytes) and the first
    # convolution's output 1.3 GB.
    assert result["growth_mb"] < 120, result
