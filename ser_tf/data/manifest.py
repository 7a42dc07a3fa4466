"""Utterance manifests: what every corpus loader returns and every pipeline consumes.

A :class:`Manifest` is a list of :class:`Utterance` rows plus the corpus's label set in
its fixed, documented order. Class indices are positions in ``labels``: they never depend
on the file system's listing order.
"""

from __future__ import annotations

import csv
import json
import re
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from typing import Callable, Iterable

#: Columns written by :meth:`Manifest.to_csv` (``extra`` is stored as JSON).
CSV_COLUMNS = ("utterance_id", "path", "label", "speaker", "gender", "text", "corpus", "extra")


def natural_key(name) -> tuple:
    """Sort key that orders embedded numbers numerically: "Session2" < "Session10"."""
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", str(name)))


@dataclass(frozen=True)
class Utterance:
    """One recording.

    ``label`` is a categorical class name from the manifest's ``labels``; for corpora with
    continuous annotations only (SEWA) it is ``None`` and ``extra`` points at the label files.
    ``gender`` is ``"female"``, ``"male"`` or ``None`` when unknown. ``extra`` holds
    corpus-specific fields (RAVDESS intensity, IEMOCAP session, EMO-DB syllables, ...).
    """

    utterance_id: str
    path: str
    label: str | None
    speaker: str
    corpus: str
    gender: str | None = None
    text: str | None = None
    extra: dict = field(default_factory=dict, compare=False, hash=False)


@dataclass
class Manifest:
    """Utterances of one corpus with the label set in its documented order."""

    corpus: str
    labels: tuple[str, ...]
    utterances: list[Utterance]
    #: Files left out by ``on_bad_audio="skip"``: ``{"path": ..., "reason": ...}``.
    skipped: list[dict] = field(default_factory=list)

    def __post_init__(self):
        self.labels = tuple(self.labels)
        unknown = {u.label for u in self.utterances if u.label is not None} - set(self.labels)
        if unknown:
            raise ValueError(f"{self.corpus}: labels {sorted(unknown)} are not in the label set "
                             f"{list(self.labels)}")
        ids = Counter(u.utterance_id for u in self.utterances)
        dupes = [k for k, n in ids.items() if n > 1]
        if dupes:
            raise ValueError(f"{self.corpus}: duplicate utterance ids, e.g. {dupes[:3]}")

    def __len__(self) -> int:
        return len(self.utterances)

    def __iter__(self):
        return iter(self.utterances)

    def __getitem__(self, i):
        return self.utterances[i]

    @property
    def label_indices(self) -> list[int]:
        """Class index of each utterance (position of its label in ``labels``)."""
        index = {name: i for i, name in enumerate(self.labels)}
        return [index[u.label] for u in self.utterances]

    @property
    def speakers(self) -> list[str]:
        return [u.speaker for u in self.utterances]

    def counts(self, by: str = "label") -> dict[str, int]:
        """Number of utterances per value of a field (``label``, ``speaker``, ``gender``).

        Label counts follow the label order and include zero counts."""
        counter = Counter(getattr(u, by) for u in self.utterances)
        if by == "label":
            return {name: counter.get(name, 0) for name in self.labels}
        return dict(sorted(counter.items(), key=lambda kv: str(kv[0])))

    def filter(self, keep: Callable[[Utterance], bool]) -> "Manifest":
        """A new manifest with the utterances for which ``keep`` is true (same label set)."""
        return replace(self, utterances=[u for u in self.utterances if keep(u)])

    def subset(self, ids: Iterable[str]) -> "Manifest":
        """The utterances with these ids, in the given order."""
        by_id = {u.utterance_id: u for u in self.utterances}
        missing = [i for i in ids if i not in by_id]
        if missing:
            raise KeyError(f"{self.corpus}: unknown utterance ids {missing[:5]}")
        return replace(self, utterances=[by_id[i] for i in ids])

    def to_csv(self, path) -> None:
        with open(path, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
            writer.writeheader()
            for u in self.utterances:
                row = asdict(u)
                row["extra"] = json.dumps(u.extra, ensure_ascii=False, sort_keys=True)
                writer.writerow({k: ("" if row[k] is None else row[k]) for k in CSV_COLUMNS})
