"""argparse types for numbers, shared by every command line (experiments, the on-device
``predict``, tuning), so each flag refuses bad values with the same one-line message.
Imports only the standard library: ``--help`` stays fast and ``ser_tf.lite`` TF-free."""

from __future__ import annotations

import argparse


def _whole_number(text: str, minimum: int, example: str) -> int:
    try:
        value = int(text)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"expected a whole number >= {minimum} "
                                         f"(e.g. {example}), got {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"expected a whole number >= {minimum} "
                                         f"(e.g. {example}), got {text!r}")
    return value


def positive_int(text: str) -> int:
    """argparse type: a whole number >= 1 (epochs, batch size, folds, threads)."""
    return _whole_number(text, 1, "10")


def non_negative_int(text: str) -> int:
    """argparse type: a whole number >= 0 (a 0-based fold index, a minimum epoch)."""
    return _whole_number(text, 0, "0")


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0 (seconds, learning rates)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}") from None
    if not (value > 0 and value != float("inf")):
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return value
