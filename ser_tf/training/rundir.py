"""The layout of a run's work folder, named in one place.

::

    <results>/<paper>/<corpus>/<run-id>.work/
        config.json                 the resolved config (its hash is the run id)
        folds.json                  the folds, with their digest
        run.lock                    held while a process trains the run
        fold_00/result.json         written atomically when fold 0 finishes
        fold_00/history.json        every epoch's metrics (across resumes)
        fold_00/backup/             resume state of a running fold (FoldBackup)
        fold_00/chosen.weights.h5   best-so-far weights of the checkpoint policy
        fold_00/chosen.policy.json  the policy's state (resumable)
        fold_00/final.weights.h5    the weights the fold was tested with
        fold_00/tflite.json         the fold's TFLite variants scored on its test part
        fold_00/embedding.npz       test utterances' embeddings (t-SNE without weights)
    <results>/<paper>/<corpus>/<run-id>/   the run record, once every fold has finished

Everything that reads or writes these files takes the names from here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

CONFIG_FILE = "config.json"
FOLDS_FILE = "folds.json"
LOCK_FILE = "run.lock"
RESULT_FILE = "result.json"
HISTORY_FILE = "history.json"
BACKUP_DIR = "backup"
CHOSEN_WEIGHTS_FILE = "chosen.weights.h5"
CHOSEN_POLICY_FILE = "chosen.policy.json"
WEIGHTS_FILE = "final.weights.h5"
TFLITE_FILE = "tflite.json"
EMBEDDING_FILE = "embedding.npz"
WORK_SUFFIX = ".work"


def fold_dir_name(fold) -> str:
    """``fold_00`` for a fold with ``index`` 0 (or the index itself; folds count from 0)."""
    index = fold if isinstance(fold, int) else fold.index
    return f"fold_{int(index):02d}"


@dataclass(frozen=True)
class FoldDir:
    """One fold's folder in a run's work folder."""

    path: Path

    @property
    def result(self) -> Path:
        return self.path / RESULT_FILE

    @property
    def history(self) -> Path:
        return self.path / HISTORY_FILE

    @property
    def backup(self) -> Path:
        return self.path / BACKUP_DIR

    @property
    def chosen_weights(self) -> Path:
        return self.path / CHOSEN_WEIGHTS_FILE

    @property
    def weights(self) -> Path:
        return self.path / WEIGHTS_FILE

    @property
    def tflite(self) -> Path:
        return self.path / TFLITE_FILE

    @property
    def embedding(self) -> Path:
        return self.path / EMBEDDING_FILE

    @property
    def finished(self) -> bool:
        return self.result.is_file()


@dataclass(frozen=True)
class RunDir:
    """A run's work folder (``<run-id>.work``) and the record folder beside it."""

    work: Path

    @classmethod
    def of(cls, results_dir: str | os.PathLike, paper: str, corpus: str, run_id: str) -> RunDir:
        return cls(Path(results_dir) / paper / corpus / f"{run_id}{WORK_SUFFIX}")

    @property
    def run_id(self) -> str:
        name = self.work.name
        return name[: -len(WORK_SUFFIX)] if name.endswith(WORK_SUFFIX) else name

    @property
    def record(self) -> Path:
        """The record folder written when every fold has finished."""
        return self.work.parent / self.run_id

    @property
    def config(self) -> Path:
        return self.work / CONFIG_FILE

    @property
    def folds(self) -> Path:
        return self.work / FOLDS_FILE

    @property
    def lock(self) -> Path:
        return self.work / LOCK_FILE

    def fold(self, fold) -> FoldDir:
        """The folder of ``fold`` (a Fold or its index)."""
        return FoldDir(self.work / fold_dir_name(fold))

    def finished_folds(self) -> list[FoldDir]:
        return [FoldDir(p.parent) for p in sorted(self.work.glob(f"fold_*/{RESULT_FILE}"))]
