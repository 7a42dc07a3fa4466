"""Vocabulary, word-vector files of every format, and the embedding matrix."""

import struct

import numpy as np
import pytest

from ser_tf.features.word_vectors import (EmbeddingResult, VectorFileError, Vocabulary,
                                          embedding_matrix, load_word_vectors, tokenize)

WORDS = ["the", "über", "straße", "cat"]
VECTORS = np.array([[0.5, -1.25, 2.0], [1.0, 0.0, -0.5], [0.125, 3.0, -2.0],
                    [-1.5, 0.25, 0.75]], np.float32)


def text_lines(words=WORDS, vectors=VECTORS):
    return [w + " " + " ".join(repr(float(v)) for v in row) for w, row in zip(words, vectors)]


def write_text(path, header=True, lines=None, trailing=""):
    lines = text_lines() if lines is None else lines
    head = [f"{len(lines)} {VECTORS.shape[1]}"] if header else []
    path.write_text("\n".join(head + [ln + trailing for ln in lines]) + "\n", encoding="utf-8")
    return path


def write_binary(path, words=WORDS, vectors=VECTORS, newline=True, count=None):
    with path.open("wb") as f:
        f.write(f"{count or len(words)} {vectors.shape[1]}\n".encode())
        for word, row in zip(words, vectors):
            f.write(word.encode() + b" " + struct.pack(f"<{len(row)}f", *row))
            if newline:
                f.write(b"\n")
    return path


# --- tokenize and Vocabulary -------------------------------------------------------------

def test_tokenize_lowercases_strips_punctuation_keeps_umlauts_and_eszett():
    assert tokenize("Über die STRAßE, bitte! Don't-stop \"now\"...") == \
        ["über", "die", "straße", "bitte", "don't-stop", "now"]
    assert Vocabulary.tokenize("Äh... ÖL") == ["äh", "öl"]


def test_vocabulary_reserves_padding_and_unknown_and_ranks_by_count():
    vocab = Vocabulary.build(["b a b", ["C", "b"], "a d"], min_count=2)
    assert vocab.words == ("<pad>", "<unk>", "b", "a")
    assert (vocab.id("<pad>"), vocab.id("nothing"), vocab.id("B,"), vocab.id("a")) == (0, 1, 2, 3)
    assert len(vocab) == 4 and "c" not in vocab and "b" in vocab
    assert vocab.add("new") == 4 and vocab.add("NEW") == 4 and len(vocab) == 5
    with pytest.raises(ValueError, match="min_count"):
        Vocabulary.build(["a"], min_count=0)
    with pytest.raises(ValueError, match="empty"):
        vocab.add("...")


def test_vocabulary_json_round_trip(tmp_path):
    vocab = Vocabulary.build(["Grüße aus Köln", "grüße"])
    path = vocab.to_json(tmp_path / "vocab.json")
    again = Vocabulary.from_json(path)
    assert again == vocab and again.id("grüße") == vocab.id("grüße") == 2
    (tmp_path / "bad.json").write_text('{"words": ["x", "y"]}')
    with pytest.raises(ValueError, match="bad.json"):
        Vocabulary.from_json(tmp_path / "bad.json")


# --- formats -----------------------------------------------------------------------------

@pytest.mark.parametrize("name, kind, header, trailing", [
    ("vectors.txt", "word2vec_text", True, ""),
    ("vectors.vec", "fasttext", True, " "),  # fastText writes a space before the newline
    ("glove.6B.3d.txt", "glove", False, ""),
])
def test_text_formats_read_exactly_with_explicit_and_auto_format(tmp_path, name, kind, header,
                                                                 trailing):
    path = write_text(tmp_path / name, header=header, trailing=trailing)
    for fmt in (kind, "auto"):
        words, vectors = load_word_vectors(path, format=fmt)
        assert words == WORDS
        assert vectors.dtype == np.float32
        np.testing.assert_array_equal(vectors, VECTORS)


@pytest.mark.parametrize("newline", [True, False])
@pytest.mark.parametrize("name", ["vectors.bin", "vectors.w2v"])  # .w2v: found by its bytes
def test_binary_word2vec_reads_exactly(tmp_path, newline, name):
    path = write_binary(tmp_path / name, newline=newline)
    words, vectors = load_word_vectors(path)
    assert words == WORDS
    np.testing.assert_array_equal(vectors, VECTORS)
    words, vectors = load_word_vectors(path, format="word2vec_binary", limit=2)
    assert words == WORDS[:2] and vectors.shape == (2, 3)


def test_limit_reads_the_first_vectors_of_a_text_file(tmp_path):
    words, vectors = load_word_vectors(write_text(tmp_path / "v.txt"), limit=3)
    assert words == WORDS[:3]
    np.testing.assert_array_equal(vectors, VECTORS[:3])


# --- errors ------------------------------------------------------------------------------

def test_wrong_dimension_names_file_and_line(tmp_path):
    lines = text_lines()
    lines[2] = "straße 1.0 2.0"
    path = write_text(tmp_path / "v.txt", lines=lines)
    with pytest.raises(VectorFileError, match=r"v\.txt:4: word 'straße' has 2 values, expected 3"):
        load_word_vectors(path)
    glove = write_text(tmp_path / "g.txt", header=False, lines=lines)
    with pytest.raises(VectorFileError, match=r"g\.txt:3: .*expected 3"):
        load_word_vectors(glove, format="glove")


def test_non_numeric_value_names_file_and_line(tmp_path):
    lines = text_lines()
    lines[1] = "über 1.0 abc 2.0"
    with pytest.raises(VectorFileError, match=r"v\.txt:3: word 'über': non-numeric value 'abc'"):
        load_word_vectors(write_text(tmp_path / "v.txt", lines=lines))
    lines[1] = "über 1.0 nan 2.0"
    with pytest.raises(VectorFileError, match=r":3: .*NaN"):
        load_word_vectors(write_text(tmp_path / "w.txt", lines=lines))


def test_truncated_binary_names_the_entry(tmp_path):
    path = write_binary(tmp_path / "v.bin")
    data = path.read_bytes()
    (tmp_path / "cut.bin").write_bytes(data[:-7])  # inside the last vector
    with pytest.raises(VectorFileError, match=r"cut\.bin: truncated at entry 4 of 4 .*'cat'"):
        load_word_vectors(tmp_path / "cut.bin")
    short = write_binary(tmp_path / "short.bin", count=6)  # header promises 6
    with pytest.raises(VectorFileError, match=r"short\.bin: truncated at entry 5 of 6"):
        load_word_vectors(short)


def test_text_file_shorter_than_its_header_is_an_error(tmp_path):
    path = tmp_path / "v.txt"
    path.write_text("10 3\n" + "\n".join(text_lines()) + "\n", encoding="utf-8")
    with pytest.raises(VectorFileError, match="header says 10 vectors, the file has 4"):
        load_word_vectors(path)


@pytest.mark.parametrize("content, fmt", [(b"", "auto"), (b"\n\n", "auto"), (b"", "glove"),
                                          (b"4 3\n", "word2vec_text"), (b"", "word2vec_binary")])
def test_empty_files_are_errors_naming_the_file(tmp_path, content, fmt):
    path = tmp_path / "empty.txt"
    path.write_bytes(content)
    with pytest.raises(VectorFileError, match=r"empty\.txt: .*(empty|no word vectors)"):
        load_word_vectors(path, format=fmt)


def test_bad_header_and_bad_arguments(tmp_path):
    path = tmp_path / "v.vec"
    path.write_text("four three\nthe 1 2 3\n", encoding="utf-8")
    with pytest.raises(VectorFileError, match=r"v\.vec:1: header"):
        load_word_vectors(path)
    with pytest.raises(ValueError, match="format"):
        load_word_vectors(path, format="bert")
    with pytest.raises(FileNotFoundError, match="nothing.txt"):
        load_word_vectors(tmp_path / "nothing.txt")


# --- embedding matrix --------------------------------------------------------------------

def test_embedding_matrix_copies_found_words_and_grows_oov_rows():
    vocab = Vocabulary(["cat", "THE", "zebra", "straße", "quokka"])
    result = embedding_matrix(vocab, WORDS, VECTORS, oov="grow", seed=3, return_result=True)
    assert isinstance(result, EmbeddingResult)
    m = result.matrix
    assert m.shape == (7, 3) and m.dtype == np.float32
    np.testing.assert_array_equal(m[0], 0)
    np.testing.assert_array_equal(m[vocab.id("cat")], VECTORS[3])
    np.testing.assert_array_equal(m[vocab.id("the")], VECTORS[0])
    np.testing.assert_array_equal(m[vocab.id("straße")], VECTORS[2])
    assert result.found == 3 and result.oov_words == ("zebra", "quokka") and result.n_oov == 2
    zebra, quokka = m[vocab.id("zebra")], m[vocab.id("quokka")]
    assert np.abs(zebra).sum() > 0 and not np.array_equal(zebra, quokka)
    again = embedding_matrix(vocab, WORDS, VECTORS, oov="grow", seed=3)
    np.testing.assert_array_equal(again, m)  # seeded
    other = embedding_matrix(vocab, WORDS, VECTORS, oov="grow", seed=4)
    assert not np.array_equal(other[vocab.id("zebra")], zebra)


def test_grown_rows_follow_the_files_scale():
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(200)]
    vectors = rng.normal(0, 0.05, (200, 50)).astype(np.float32)
    vocab = Vocabulary([f"new{i}" for i in range(100)])
    grown = embedding_matrix(vocab, words, vectors, oov="grow")[2:]
    assert abs(grown.std() / vectors.std() - 1) < 0.05


def test_random_and_zeros_policies():
    vocab = Vocabulary(["cat", "zebra", "quokka"])
    shared = embedding_matrix(vocab, WORDS, VECTORS, oov="random")
    np.testing.assert_array_equal(shared[3], shared[1])
    np.testing.assert_array_equal(shared[4], shared[1])
    assert np.abs(shared[1]).sum() > 0
    zeros = embedding_matrix(vocab, WORDS, VECTORS, oov="zeros")
    np.testing.assert_array_equal(zeros[[0, 1, 3, 4]], 0)
    np.testing.assert_array_equal(zeros[2], VECTORS[3])


def test_embedding_matrix_rejects_bad_input():
    vocab = Vocabulary(["cat"])
    with pytest.raises(ValueError, match="oov"):
        embedding_matrix(vocab, WORDS, VECTORS, oov="skip")
    with pytest.raises(ValueError, match="4 words but 3 vectors"):
        embedding_matrix(vocab, WORDS, VECTORS[:3])
    with pytest.raises(TypeError, match="Vocabulary"):
        embedding_matrix({"cat": 2}, WORDS, VECTORS)
