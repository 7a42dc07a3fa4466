"""The ``--ship`` flags (:mod:`ser_tf.experiments.deploy` does the work): added to a
paper's parser by :func:`add_deploy_arguments` and checked after parsing by
:func:`check_deploy_usage`. argparse only, so ``--help`` imports nothing heavy and the
shared CLI can check them without importing the runner."""

from __future__ import annotations

import argparse

#: The protocol whose finished cross-validation a deployable model comes from.
DEPLOY_PROTOCOL = "speaker"


def add_deploy_arguments(parser: argparse.ArgumentParser, *, ship_dest: bool = False) -> None:
    """``--ship`` and ``--ood-corpus``; ``ship_dest``: also ``--ship-dest`` (for a paper
    that does not define it for other flags already)."""
    parser.add_argument("--ship", action="store_true",
                        help="do not cross-validate: train the deployable model on every "
                             "speaker (epochs: median chosen by the finished speaker-protocol "
                             "run of these flags), calibrate it, export it to --ship-dest "
                             "with model cards")
    parser.add_argument("--ood-corpus", action="append", default=[], metavar="NAME=DIR",
                        help="with --ship: measure the out-of-domain warning's detection rate "
                             "on this corpus (repeatable), e.g. RAVDESS=~/corpora/ravdess")
    parser.add_argument("--refresh-ood", action="store_true",
                        help="with --ship: only measure the out-of-domain check again and "
                             "update the already shipped models' sidecars, cards and deploy "
                             "record (no training, no export)")
    if ship_dest:
        parser.add_argument("--ship-dest", default="tflite_models",
                            help="with --ship: where the models and cards go "
                                 "(default: tflite_models)")


def check_deploy_usage(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """The flags that only mean something with ``--ship`` are refused without it (a
    ``parser.error``: usage, exit 2), not silently ignored."""
    if not hasattr(args, "ship") or args.ship:
        return
    given = [flag for flag, value in (("--ood-corpus", getattr(args, "ood_corpus", None)),
                                      ("--refresh-ood", getattr(args, "refresh_ood", None)))
             if value]
    if given:
        parser.error(f"{' and '.join(given)} only work with --ship")
