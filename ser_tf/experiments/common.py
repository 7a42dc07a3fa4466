"""Command-line options and the entry point every experiment module shares.

Each paper's module adds its own hyperparameters; these are the flags the shared pipeline
needs: where the data and results live, the evaluation protocol, the distribution
strategy, seeding and verbosity. Plain argparse, so ``--help`` lists everything.

Building the parser imports neither TensorFlow nor scikit-learn (``--help`` answers in well
under a second): the protocol and strategy names are spelled here, and a test checks they
match :mod:`ser_tf.training.protocols` and :mod:`ser_tf.training.seeding`. Numbers are
checked while parsing (:func:`positive_int`, :class:`ExperimentParser` checks), so a bad
value is argparse's one-line usage error, not a traceback hours later.
"""

from __future__ import annotations

import argparse
import sys
from typing import Callable

# The number types live in ser_tf.util.argtypes (shared with ser_tf.lite and tuning).
from ser_tf.util.argtypes import (_whole_number, non_negative_int, positive_float,  # noqa: F401
                                  positive_int)

#: ``ser_tf.training.protocols.PROTOCOLS`` (spelled here: that module imports scikit-learn).
PROTOCOLS = ("paper", "paper-time", "clean", "speaker")
#: Protocols whose ``--folds`` counts repetitions (overlapping test sets): 1 is enough.
REPETITION_PROTOCOLS = ("paper-time",)
#: ``ser_tf.training.seeding.STRATEGIES`` (spelled here: that module imports TensorFlow).
STRATEGIES = ("default", "mirrored", "multi-worker")
#: ``--verbose``: 0 no progress (as ``--quiet``), 1 progress (default), 2 also TensorFlow's
#: own messages (:mod:`ser_tf.util.quiet`). Light-SERNet's original script had ``-v 0/1``.
VERBOSITY = (0, 1, 2)


class ExperimentParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` that also checks values against each other once parsed
    (e.g. ``--folds`` against ``--protocol``): each check returns an error message or
    ``None``, and a message ends parsing with argparse's usage error (exit status 2)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.checks: list[Callable[[argparse.Namespace], str | None]] = []

    def add_check(self, check: Callable[[argparse.Namespace], str | None]) -> None:
        self.checks.append(check)

    def parse_known_args(self, args=None, namespace=None):
        namespace, extras = super().parse_known_args(args, namespace)
        for check in self.checks:
            message = check(namespace)
            if message:
                self.error(message)
        return namespace, extras


def fold_count(text: str) -> int:
    """argparse type of ``--folds``: a whole number >= 1 (k-fold protocols need 2 or more:
    :func:`check_folds`, which knows the protocol)."""
    try:
        return _whole_number(text, 1, "10")
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected a number of folds >= 2, got {text!r}") \
            from None


def add_common_arguments(parser: argparse.ArgumentParser, *, default_protocol: str = "clean",
                         default_seed: int = 42,
                         protocols: tuple[str, ...] = ("paper", "clean", "speaker"),
                         ) -> argparse.ArgumentParser:
    from ser_tf.util.paths import COMMITTED_RESULTS, RESULTS_ENV, default_results_dir

    group = parser.add_argument_group("data and outputs")
    group.add_argument("--data-dir", help="corpus folder (default: $SER_TF_DATA/<corpus>)")
    group.add_argument("--on-bad-audio", choices=("fail", "skip"), default="fail",
                       help="stop at unusable audio files (default) or leave them out; skipped "
                            "files are listed in the run record")
    group.add_argument("--results-dir", default=str(default_results_dir()),
                       help="run records go to RESULTS_DIR/<paper>/<corpus>/<run-id>/ "
                            f"(default: ${RESULTS_ENV}, else $XDG_DATA_HOME/ser-tf/results or "
                            "~/.local/share/ser-tf/results: %(default)s; the repository's "
                            f"committed records are in {COMMITTED_RESULTS})")
    group.add_argument("--cache-dir", help="feature cache (default: $SER_TF_CACHE or "
                                           "~/.cache/ser-tf/features)")
    group.add_argument("--print-run-dir", action="store_true",
                       help="do not train: print the work folder of the run these flags "
                            "describe (RESULTS_DIR/<paper>/<corpus>/<run-id>.work; its "
                            "record folder is the same path without .work) and exit")
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
    group.add_argument("--folds", type=fold_count, default=10,
                       help="number of folds, at least 2 (paper-time: repetitions, at least "
                            "1; default 10)")
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
    if not {"-v", "--verbose"} & set(parser._option_string_actions):
        group.add_argument("--verbose", "-v", type=int, nargs="?", const=2, default=1,
                           choices=VERBOSITY, metavar="N",
                           help="0: no progress (as --quiet); 1: progress (default); 2 (also "
                                "-v alone): TensorFlow's own messages too (start-up, GPU "
                                "probing, converter), hidden otherwise")
    if isinstance(parser, ExperimentParser):
        parser.add_check(check_folds)
    return parser


def check_folds(args: argparse.Namespace) -> str | None:
    """``--folds`` against ``--protocol``. (``--train-folds`` naming folds the run lacks is
    a one-line error when the run starts: the folds a protocol makes can be fewer than
    ``--folds``, e.g. one per speaker.)"""
    folds, protocol = getattr(args, "folds", None), getattr(args, "protocol", None)
    if folds is None:
        return None
    if folds < 2 and protocol not in REPETITION_PROTOCOLS:
        return (f"argument --folds: k-fold protocol {protocol!r} needs at least 2 folds, "
                f"got {folds}")
    return None


def verbosity(args: argparse.Namespace) -> int:
    """0 (no progress), 1 (progress) or 2 (TensorFlow's messages too) from ``--verbose``
    and ``--quiet``."""
    level = getattr(args, "verbose", 1)
    level = 1 if level is None else int(level)
    return 0 if getattr(args, "quiet", False) else level


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
            argv=None, *, summarize: Callable[[dict], list[str]] | None = None,
            before_run: Callable[[argparse.Namespace], None] | None = None) -> int:
    """Parse ``argv``, ``run`` the experiment and print where its record went.

    ``before_run(args)`` runs once the flags are parsed (e.g. quiet TensorFlow start-up);
    ``summarize(out)`` gives the lines printed after a finished run (e.g. its scores).
    Returns 0, or 1 after printing ``<prog>: error: <message>`` for a :func:`user_errors`
    failure (nothing the run already wrote is touched: folds are resumable).
    """
    args = parser.parse_args(argv)
    from ser_tf.experiments.deploy_flags import check_deploy_usage

    check_deploy_usage(parser, args)
    errors = user_errors()
    try:
        if before_run is not None:
            before_run(args)
        out = run(args)
    except errors as error:
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return 1
    if out.get("printed"):  # the run printed its answer (--print-run-dir): nothing to add
        return 0
    if out.get("record") is None:
        done = out.get("folds_done", [])
        print(f"run {out['run_id']}: {len(done)} of {out['n_folds']} folds finished "
              f"({', '.join(map(str, done)) or 'none'}); the record is written when all have: "
              f"run the same command without --train-folds")
        return 0
    lines = summarize(out) if summarize is not None else []
    if lines:
        print("\n".join(lines))
    else:
        print(f"run {out['run_id']}: record {out['record']}")
    return 0
