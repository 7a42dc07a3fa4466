"""A user's own recordings listed in a CSV file.

Required columns ``path`` and ``label``; optional ``speaker`` (default ``"unknown"``),
``gender`` (``female``/``male``, also ``f``/``m``, any case; empty = unknown), ``text``,
``utterance_id`` (default: the path relative to the CSV's folder, without extension) and
``extra`` (a JSON object). Any other column, and a ``corpus`` column as ``source_corpus``,
is kept in ``extra`` as text. Relative paths are relative to the CSV file's folder.

This reads back what :meth:`~ser_tf.data.manifest.Manifest.to_csv` writes (for
classification corpora: a row needs a label). The label order is the ``labels`` option when
given, otherwise the **sorted** distinct labels of the file (rows whose audio is missing
included, so class indices do not change when some files are skipped).

A listed audio file that is missing or unreadable does not stop the scan: every such file
is collected, with its CSV line, and :func:`ser_tf.data.load_manifest` then names them all
(``on_bad_audio="fail"``) or leaves them out and lists them in ``manifest.skipped``
(``"skip"``). Malformed rows (no path, no label, bad gender, duplicate id) are errors in
the CSV itself and stop the scan at their line.

Example ``manifest.csv``::

    path,label,speaker
    clips/a1.wav,angry,s01
    clips/b7.wav,calm,s02
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from ser_tf.data.audio import AudioError, check_file
from ser_tf.data.corpora.base import UserLabelsCorpus, check_label_order, register
from ser_tf.data.manifest import Utterance

REQUIRED = ("path", "label")
KNOWN = ("utterance_id", "path", "label", "speaker", "gender", "text", "corpus", "extra")
GENDERS = {"female": "female", "f": "female", "male": "male", "m": "male"}


@register
class CSV(UserLabelsCorpus):
    name = "CSV"
    label_source = "labels of the manifest"
    folder = "csv"
    homepage = "your own recordings (see the ser_tf.data.corpora.csv_manifest docstring)"
    layout = ("a CSV file (default <root>/manifest.csv) with columns path,label and optional "
              "speaker,gender,text,utterance_id,extra; paths relative to the CSV's folder")
    expected_files = None

    def __init__(self, manifest: str = "manifest.csv", labels=None):
        """Args:
            manifest: the CSV file, relative to the data folder or absolute.
            labels: the label order; ``None`` = the sorted distinct labels of the file.
        """
        if not isinstance(manifest, (str, Path)) or not str(manifest).strip():
            raise ValueError(f"CSV manifest must be a file name or path, got {manifest!r}")
        self.manifest = str(manifest)
        self.labels_option = check_label_order(labels, "CSV")
        self._found = None

    def options(self) -> dict:
        return {"manifest": self.manifest,
                "labels": None if self.labels_option is None else list(self.labels_option)}

    def scan(self, root: Path) -> list[Utterance]:
        csv_path = Path(root) / Path(self.manifest).expanduser()  # absolute manifest wins
        if not csv_path.is_file():
            raise self.layout_error(csv_path, "manifest CSV not found")
        base = csv_path.parent
        with open(csv_path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            columns = [c.strip() for c in reader.fieldnames or []]
            missing = [c for c in REQUIRED if c not in columns]
            if missing:
                raise ValueError(f"{csv_path}:1: missing column(s) {missing}; the header has "
                                 f"{columns} (required: path,label)")
            reader.fieldnames = columns
            utterances, lines, problems, labels = [], {}, [], set()
            for row in reader:
                n = reader.line_num
                if None in row:
                    raise ValueError(f"{csv_path}:{n}: more fields than header columns")
                row = {k: (v or "").strip() for k, v in row.items()}
                if not any(row.values()):
                    continue
                utt = self._utterance(row, csv_path, n, base)
                if utt.utterance_id in lines:
                    raise ValueError(f"{csv_path}:{n}: duplicate utterance id "
                                     f"{utt.utterance_id!r} (first on line "
                                     f"{lines[utt.utterance_id]})")
                lines[utt.utterance_id] = n
                labels.add(utt.label)
                try:
                    check_file(utt.path)
                except AudioError as err:
                    problems.append(AudioError(err.path, f"{err.reason} (listed in "
                                                         f"{csv_path}:{n})"))
                    continue
                utterances.append(utt)
        self._found = tuple(sorted(labels))
        self._scan_problems = tuple(problems)
        return utterances

    def _utterance(self, row: dict, csv_path: Path, n: int, base: Path) -> Utterance:
        where = f"{csv_path}:{n}"
        if not row["path"]:
            raise ValueError(f"{where}: empty path")
        label = row["label"]
        if not label:
            raise ValueError(f"{where}: empty label")
        if self.labels_option is not None and label not in self.labels_option:
            raise ValueError(f"{where}: label {label!r} is not one of {list(self.labels_option)}")
        gender_text = row.get("gender", "")
        if gender_text and gender_text.lower() not in GENDERS:
            raise ValueError(f"{where}: unknown gender {gender_text!r} "
                             "(use female, male, f, m or leave empty)")
        rel = Path(row["path"]).expanduser()
        path = rel if rel.is_absolute() else base / rel
        if rel.is_absolute() and path.is_relative_to(base):
            rel = path.relative_to(base)
        utt_id = row.get("utterance_id") or rel.with_suffix("").as_posix()
        extra = {}
        if row.get("extra"):
            try:
                extra = json.loads(row["extra"])
            except json.JSONDecodeError as err:
                raise ValueError(f"{where}: extra is not valid JSON ({err})") from None
            if not isinstance(extra, dict):
                raise ValueError(f"{where}: extra must be a JSON object, got {row['extra']!r}")
        if row.get("corpus"):
            extra.setdefault("source_corpus", row["corpus"])
        extra.update({k: v for k, v in row.items() if k not in KNOWN and v})
        return Utterance(
            utterance_id=utt_id, path=str(path), label=label,
            speaker=row.get("speaker") or "unknown", corpus=self.name,
            gender=GENDERS.get(gender_text.lower()) if gender_text else None,
            text=row.get("text") or None, extra=extra)
