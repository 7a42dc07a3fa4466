"""Command-line options and the entry point every experiment module shares.

Each paper's module adds its own hyperparameters; these are the flags the shared pipeline
needs: where the data and results live, the evaluation protocol, the distribution
strategy, seeding and verbosity. Plain argparse, so ``--help`` lists everything.
"""

from __future__ import annotations

import argparse
import sys
from typing import Callable

from ser_tf.training.protocols import PROTOCOLS
from ser_tf.training.seeding import STRATEGIES


def add_common_arguments(parser: argparse.ArgumentParser, *, default_protocol: str = "clean",
                         default_seed: int = 42,
                         protocols: tuple[str, ...] = ("paper", "clean", "speaker"),
                         ) -> argparse.ArgumentParser:
    group = parser.add_argument_group("data and outputs")
    group.add_argument("--data-dir", help="corpus folder (default: $SER_TF_DATA/<corpus>)")
    group.add_argument("--on-bad-audio", choices=("fail", "skip"), default="fail",
                       help="stop at unusable audio files (default) or leave them out; skipped "
                            "files are listed in the run record")
    group.add_argument("--results-dir", default="experiments/results",
                       help="run records go to RESULTS_DIR/<paper>/<corpus>/<run-id>/")
    group.add_argument("--cache-dir", help="feature cache (default: $SER_TF_CACHE or "
                                           "~/.cache/ser-tf/features)")
    group = parser.add_argument_group("protocol and training")
    unknown = set(protocols) - set(PROTOCOLS)
    if unknown:
        raise ValueError(f"unknown protocols {sorted(unknown)}; known: {PROTOCOLS}")
    group.add_argument("--protocol", choices=protocols, default=default_protocol,
                       help="paper: as the original code (model chosen on the test fold: "
                            "optimistic); "
                            + ("paper-time: the original code as it stood when the paper was "
                               "written (see the paper's README); " if "paper-time" in protocols
                               else "")
                            + "clean: stratified k-fold, selection on a validation split; "
                              "speaker: speaker-independent folds")
    group.add_argument("--folds", type=int, default=10,
                       help="number of folds (paper-time: repetitions; default 10)")
    group.add_argument("--train-folds", type=fold_list, metavar="I,J,...",
                       help="train only these folds (0-based) in this call, e.g. two folds of a "
                            "long run first; the run record is written once all have finished")
    group.add_argument("--seed", type=int, default=default_seed, help="training seed")
    group.add_argument("--fold-seed", type=int, default=None,
                       help="fold shuffling seed (default: the paper's for --protocol paper)")
    group.add_argument("--deterministic", action="store_true",
                       help="enable TensorFlow op determinism (slower)")
    group.add_argument("--strategy", choices=STRATEGIES, default="default",
                       help="tf.distribute strategy: default, mirrored (local GPUs), "
                            "multi-worker (reads TF_CONFIG)")
    group.add_argument("--quiet", action="store_true", help="no progress output")
    return parser


def fold_list(text: str) -> list[int]:
    """``"0,6"`` -> ``[0, 6]`` (argparse type of ``--train-folds``)."""
    try:
        folds = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected fold numbers like 0,6, got {text!r}")
    if not folds or min(folds) < 0:
        raise argparse.ArgumentTypeError(f"expected fold numbers >= 0 like 0,6, got {text!r}")
    return folds


def user_errors() -> tuple[type[BaseException], ...]:
    """Failures that are the user's to fix (a missing corpus, bad audio, a run another
    process is training, no network): their message says what and where, so the CLI prints
    it alone. Anything else keeps its traceback: it is a bug to report."""
    from ser_tf.data import AudioError, BadAudioError, CorpusLayoutError
    from ser_tf.data.download import DownloadError
    from ser_tf.training.kfold import FoldSelectionError, RunLockedError
    from ser_tf.util.errors import UserError

    return (FileNotFoundError, AudioError, BadAudioError, CorpusLayoutError, DownloadError,
            RunLockedError, FoldSelectionError, UserError)


def run_cli(parser: argparse.ArgumentParser, run: Callable[[argparse.Namespace], dict],
            argv=None) -> int:
    """Parse ``argv``, ``run`` the experiment and print where its record went.

    Returns 0, or 1 after printing ``<prog>: error: <message>`` for a :func:`user_errors`
    failure (nothing the run already wrote is touched: folds are resumable).
    """
    args = parser.parse_args(argv)
    try:
        out = run(args)
    except user_errors() as error:
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return 1
    if out.get("record") is None:
        done = out.get("folds_done", [])
        print(f"run {out['run_id']}: {len(done)} of {out['n_folds']} folds finished "
              f"({', '.join(map(str, done)) or 'none'}); the record is written when all have: "
              f"run the same command without --train-folds")
        return 0
    print(f"run {out['run_id']}: record {out['record']}")
    return 0
