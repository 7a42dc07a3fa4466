"""Words as ids, pretrained word vectors read from disk, and the embedding matrix joining them.

- :func:`tokenize` / :class:`Vocabulary`: transcripts -> word ids (0 = padding / no word,
  1 = unknown word), saved as JSON next to a trained model.
- :func:`load_word_vectors`: word2vec (text and binary), GloVe and fastText ``.vec`` files
  -> ``(words, float32 (N, D) vectors)``, with errors naming the file and line.
- :func:`embedding_matrix`: a ``(len(vocabulary), D)`` matrix for a Keras ``Embedding``:
  found words copy their vectors, the rest follow an OOV policy (``"grow"``: each missing
  word gets its own seeded random vector, scaled like the file's).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

__all__ = ["PAD", "UNK", "EmbeddingResult", "OOV_POLICIES", "VECTOR_FORMATS", "Vocabulary",
           "VectorFileError", "embedding_matrix", "load_word_vectors", "tokenize"]

PAD, UNK = "<pad>", "<unk>"
VECTOR_FORMATS = ("auto", "word2vec_text", "word2vec_binary", "glove", "fasttext")
OOV_POLICIES = ("grow", "random", "zeros")

# A word: letters/digits of any script (umlauts, ß), optionally joined by inner apostrophes
# ("don't") or hyphens ("well-known"); everything else is a separator.
_WORD = re.compile(r"[^\W_]+(?:['’\-][^\W_]+)*")


def tokenize(text: str) -> list[str]:
    """Lower-cased words of ``text``, punctuation dropped: ``"Wäre es groß?"`` ->
    ``["wäre", "es", "groß"]``. ``str.lower`` (not ``casefold``) keeps ß as ß."""
    if not isinstance(text, str):
        raise TypeError(f"tokenize takes a string, got {type(text).__name__}")
    return [m.group(0).replace("’", "'") for m in _WORD.finditer(text.lower())]


class Vocabulary:
    """Word <-> id. Id 0 is padding (no word: silence frames), id 1 the unknown word;
    real words start at 2. Words are stored normalised (:func:`tokenize`'s rules)."""

    def __init__(self, words: Iterable[str] = ()):
        self._words: list[str] = [PAD, UNK]
        self._ids: dict[str, int] = {PAD: 0, UNK: 1}
        for word in words:
            self.add(word)

    @staticmethod
    def tokenize(text: str) -> list[str]:
        return tokenize(text)

    @staticmethod
    def _normalize(word: str) -> str:
        if not isinstance(word, str):
            raise TypeError(f"a word must be a string, got {type(word).__name__}")
        if word in (PAD, UNK):
            return word
        tokens = tokenize(word)
        # "Hello," -> "hello"; a phrase ("New York!") -> "new york"; "..." -> "" (no word).
        return " ".join(tokens)

    @classmethod
    def build(cls, texts_or_tokens: Iterable[str | Sequence[str]], min_count: int = 1
              ) -> "Vocabulary":
        """A vocabulary of every word seen at least ``min_count`` times, most frequent first
        (ties in order of first appearance). Each item is a text (tokenized) or a sequence
        of tokens."""
        if isinstance(min_count, bool) or int(min_count) != min_count or min_count < 1:
            raise ValueError(f"min_count must be a positive integer, got {min_count!r}")
        counts: Counter = Counter()
        for k, item in enumerate(texts_or_tokens):
            if isinstance(item, str):
                tokens = tokenize(item)
            elif isinstance(item, Iterable):
                tokens = [cls._normalize(t) for t in item]
            else:
                raise TypeError(f"item #{k} must be a text or a sequence of tokens, got "
                                f"{type(item).__name__}")
            counts.update(t for t in tokens if t)
        # Counter keeps insertion order, and sorted() is stable: ties stay first-seen first.
        ranked = sorted(counts.items(), key=lambda kv: -kv[1])
        return cls(word for word, n in ranked if n >= int(min_count))

    def id(self, word: str) -> int:
        """The word's id, or 1 (unknown)."""
        return self._ids.get(self._normalize(word), 1)

    def add(self, word: str) -> int:
        """Add ``word`` (if new) and return its id: the vocabulary grows."""
        word = self._normalize(word)
        if not word:
            raise ValueError("cannot add an empty word")
        if word not in self._ids:
            self._ids[word] = len(self._words)
            self._words.append(word)
        return self._ids[word]

    def word(self, word_id: int) -> str:
        return self._words[int(word_id)]

    @property
    def words(self) -> tuple[str, ...]:
        """Every entry in id order, ``<pad>`` and ``<unk>`` first."""
        return tuple(self._words)

    def __len__(self) -> int:
        return len(self._words)

    def __contains__(self, word) -> bool:
        return isinstance(word, str) and self._normalize(word) in self._ids

    def __eq__(self, other) -> bool:
        return isinstance(other, Vocabulary) and self._words == other._words

    def to_json(self, path) -> Path:
        path = Path(path)
        path.write_text(json.dumps({"format": 1, "words": self._words}, ensure_ascii=False),
                        encoding="utf-8")
        return path

    @classmethod
    def from_json(cls, path) -> "Vocabulary":
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            words = data["words"]
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise ValueError(f"{path}: not a vocabulary file ({error})") from None
        if list(words[:2]) != [PAD, UNK] or len(set(words)) != len(words):
            raise ValueError(f"{path}: a vocabulary starts with {PAD!r}, {UNK!r} and has no "
                             "duplicate word")
        vocabulary = cls(words[2:])
        if vocabulary._words != list(words):  # a word that normalises to another one
            raise ValueError(f"{path}: words are not normalised (tokenize's rules)")
        return vocabulary


# --- word-vector files -------------------------------------------------------------------

class VectorFileError(ValueError):
    """A word-vector file that cannot be read as its format; the message names the file and
    the line (text) or entry and byte offset (binary)."""


def _detect_format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix == ".bin":
        return "word2vec_binary"
    if suffix == ".vec":
        return "fasttext"
    with path.open("rb") as f:
        head = f.read(65536)
    if not head.strip():
        raise VectorFileError(f"{path}: empty file, no word vectors")
    first, _, rest = head.partition(b"\n")
    fields = first.split()
    if len(fields) != 2 or not all(x.isdigit() for x in fields):
        return "glove"  # no "count dimension" header
    try:
        rest.decode("utf-8")
    except UnicodeDecodeError as error:
        # Cut mid-character at the end of the peek is still text; earlier, it is binary.
        if error.start < len(rest) - 4:
            return "word2vec_binary"
    return "word2vec_text"


def _parse_header(line: str, path: Path) -> tuple[int, int]:
    fields = line.split()
    try:
        if len(fields) != 2:
            raise ValueError
        count, dim = int(fields[0]), int(fields[1])
    except ValueError:
        raise VectorFileError(f"{path}:1: header must be '<count> <dimension>', got "
                              f"{line.strip()[:80]!r}") from None
    if count < 1 or dim < 1:
        raise VectorFileError(f"{path}:1: header says {count} vectors of dimension {dim}; "
                              "both must be positive")
    return count, dim


def _parse_vector(values: Sequence[str], dim: int, path: Path, line_no: int, word: str):
    if len(values) != dim:
        raise VectorFileError(f"{path}:{line_no}: word {word!r} has {len(values)} values, "
                              f"expected {dim}")
    try:
        vector = np.array([float(v) for v in values], np.float32)
    except ValueError:
        bad = next(v for v in values if not _is_float(v))
        raise VectorFileError(f"{path}:{line_no}: word {word!r}: non-numeric value "
                              f"{bad[:40]!r}") from None
    if not np.isfinite(vector).all():
        raise VectorFileError(f"{path}:{line_no}: word {word!r} has NaN or infinite values")
    return vector


def _is_float(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def _read_text(path: Path, *, header: bool, limit: int | None):
    words, vectors, dim, count = [], [], None, None
    with path.open("r", encoding="utf-8", errors="strict", newline="") as f:
        line_no = 0
        try:
            for line_no, line in enumerate(f, start=1):
                if header and line_no == 1:
                    count, dim = _parse_header(line, path)
                    continue
                if not line.strip():
                    continue  # a trailing blank line
                if limit is not None and len(words) >= limit:
                    break
                fields = line.rstrip("\r\n").split()
                word = fields[0]
                if dim is None:  # GloVe: the first line sets the dimension
                    dim = len(fields) - 1
                    if dim < 1:
                        raise VectorFileError(f"{path}:{line_no}: word {word!r} has no values")
                vectors.append(_parse_vector(fields[1:], dim, path, line_no, word))
                words.append(word)
        except UnicodeDecodeError as error:
            raise VectorFileError(f"{path}:{line_no + 1}: not UTF-8 text ({error.reason}); a "
                                  "binary word2vec file needs format='word2vec_binary'") from None
    if header and count is None:
        raise VectorFileError(f"{path}: empty file, no word vectors")
    if not words:
        raise VectorFileError(f"{path}: no word vectors (empty file or header only)")
    if count is not None and limit is None and len(words) != count:
        raise VectorFileError(f"{path}: header says {count} vectors, the file has "
                              f"{len(words)} (truncated or wrong header)")
    return words, np.stack(vectors)


def _read_binary(path: Path, *, limit: int | None):
    with path.open("rb") as f:
        header = f.readline()
        if not header.strip():
            raise VectorFileError(f"{path}: empty file, no word vectors")
        count, dim = _parse_header(header.decode("ascii", errors="replace"), path)
        wanted = count if limit is None else min(count, limit)
        words, vectors = [], np.empty((wanted, dim), np.float32)
        for entry in range(wanted):
            offset = f.tell()
            word = bytearray()
            while True:
                byte = f.read(1)
                if not byte:
                    raise VectorFileError(f"{path}: truncated at entry {entry + 1} of {count} "
                                          f"(byte {offset}): the file ends inside a word")
                if byte == b" ":
                    break
                if byte == b"\n" and not word:
                    continue  # the optional newline after the previous vector
                word += byte
            try:
                text = word.decode("utf-8")
            except UnicodeDecodeError:
                raise VectorFileError(f"{path}: entry {entry + 1} (byte {offset}): word is not "
                                      f"UTF-8 ({bytes(word[:40])!r})") from None
            data = f.read(4 * dim)
            if len(data) != 4 * dim:
                raise VectorFileError(f"{path}: truncated at entry {entry + 1} of {count} "
                                      f"(word {text!r}, byte {offset}): {len(data)} of "
                                      f"{4 * dim} vector bytes")
            vectors[entry] = np.frombuffer(data, "<f4")
            if not np.isfinite(vectors[entry]).all():
                raise VectorFileError(f"{path}: entry {entry + 1} (word {text!r}) has NaN or "
                                      "infinite values")
            words.append(text)
    return words, vectors


def load_word_vectors(path, *, format: str = "auto", limit: int | None = None
                      ) -> tuple[list[str], np.ndarray]:
    """Read a word-vector file: ``(words, float32 (N, D) vectors)`` in file order.

    Formats: ``word2vec_text`` (header ``"N D"``, then ``word v1 ... vD`` lines),
    ``word2vec_binary`` (header line, then per entry ``word``, a space and ``D``
    little-endian float32, optionally followed by a newline), ``glove`` (no header) and
    ``fasttext`` (``.vec``: word2vec text). ``"auto"`` picks by extension (``.bin``,
    ``.vec``) and else by the first line (a ``"N D"`` header or not; non-UTF-8 bytes after
    it mean binary). ``limit``: read only the first ``limit`` vectors (the most frequent
    words, in the usual files). Duplicate words are returned as they are (the first one wins
    in :func:`embedding_matrix`).
    """
    path = Path(path)
    if format not in VECTOR_FORMATS:
        raise ValueError(f"format must be one of {VECTOR_FORMATS}, got {format!r}")
    if limit is not None and (isinstance(limit, bool) or int(limit) != limit or limit < 1):
        raise ValueError(f"limit must be a positive integer or None, got {limit!r}")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such word-vector file")
    if path.stat().st_size == 0:
        raise VectorFileError(f"{path}: empty file, no word vectors")
    if format == "auto":
        format = _detect_format(path)
    if format == "word2vec_binary":
        return _read_binary(path, limit=limit)
    return _read_text(path, header=format != "glove", limit=limit)


# --- embedding matrix --------------------------------------------------------------------

@dataclass(frozen=True)
class EmbeddingResult:
    """An embedding matrix and how it was filled."""

    matrix: np.ndarray
    found: int                     # vocabulary words (ids >= 2) copied from the file
    oov_words: tuple[str, ...]     # vocabulary words missing from the file, in id order
    policy: str

    @property
    def n_oov(self) -> int:
        return len(self.oov_words)


def embedding_matrix(vocabulary: Vocabulary, words: Sequence[str], vectors: np.ndarray, *,
                     oov: str = "grow", seed: int = 0, return_result: bool = False):
    """A ``(len(vocabulary), D)`` float32 matrix: row ``i`` is the vector of word ``i``.

    Row 0 (padding) is zeros. A vocabulary word is looked up as it is, then lower-cased
    among the file's words (first occurrence wins). Words missing from the file (OOV):

    - ``"grow"``: each gets its own random row drawn from N(0, s^2), ``s`` the standard
      deviation of the file's vector values, so new rows are on the file's scale: the
      vocabulary is grown for the out-of-vocabulary words (their rows are then trained).
    - ``"random"``: all share the unknown word's random row (row 1): as if not in the
      vocabulary at all.
    - ``"zeros"``: zero rows (and row 1 too).

    Seeded: the same inputs and ``seed`` give the same matrix. With ``return_result`` an
    :class:`EmbeddingResult` (matrix, counts, the OOV words) is returned instead.
    """
    if not isinstance(vocabulary, Vocabulary):
        raise TypeError(f"vocabulary must be a Vocabulary, got {type(vocabulary).__name__}")
    if oov not in OOV_POLICIES:
        raise ValueError(f"oov must be one of {OOV_POLICIES}, got {oov!r}")
    vectors = np.asarray(vectors, np.float32)
    if vectors.ndim != 2 or vectors.shape[0] < 1 or vectors.shape[1] < 1:
        raise ValueError(f"vectors must be a non-empty (N, D) array, got shape {vectors.shape}")
    if len(words) != vectors.shape[0]:
        raise ValueError(f"{len(words)} words but {vectors.shape[0]} vectors")
    exact, lowered = {}, {}
    for row, word in enumerate(words):
        exact.setdefault(word, row)
        lowered.setdefault(word.lower(), row)
    scale = float(np.std(vectors, dtype=np.float64)) or 1.0
    rng = np.random.default_rng(int(seed))
    dim = vectors.shape[1]
    matrix = np.zeros((len(vocabulary), dim), np.float32)
    if oov != "zeros":
        matrix[1] = rng.normal(0.0, scale, dim)
    found, missing = 0, []
    for word_id, word in enumerate(vocabulary.words[2:], start=2):
        row = exact.get(word, lowered.get(word.lower()))
        if row is not None:
            matrix[word_id] = vectors[row]
            found += 1
            continue
        missing.append(word)
        if oov == "grow":
            matrix[word_id] = rng.normal(0.0, scale, dim)
        elif oov == "random":
            matrix[word_id] = matrix[1]
    if return_result:
        return EmbeddingResult(matrix, found, tuple(missing), oov)
    return matrix
