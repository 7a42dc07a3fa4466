"""``--ship`` for TIM-Net: the deployable model of a finished speaker-independent run.

The shared machinery (:mod:`ser_tf.experiments.deploy`, :mod:`ser_tf.export.deploy`) does
the work; this module names the files, titles the cards and adds what only TIM-Net's
recipe explains:

- **features-in only.** TIM-Net's MFCCs are librosa's (``librosa_mfcc``: 22 050 Hz,
  2048-point frames, hop 512, 128 slaney mel bands, ``power_to_db`` with an 80 dB floor
  below each input's maximum, 39 coefficients). The device computes exactly that
  front-end in NumPy (:func:`ser_tf.features.spectral.numpy_features`), so the shipped
  model gets the features it was trained and cross-validated on; a waveform-in model would
  have to use the TensorFlow MFCC layer instead, a different computation (<= 1e-3 away).
- **the window** is the model's input length: TIM-Net's sample count for the corpus at
  22 050 Hz (EMO-DB 96 000 = 4.35 s: recordings of 1.2-9 s were centre-cropped or padded
  to it), or ``--window SECONDS``. The shared RAVDESS here is a copy with every file cut
  to 2.39 s; TIM-Net's RAVDESS length (110 000 = 4.99 s) would make every training input
  half silence, so the RAVDESS model to ship is trained with ``--window 2.39``: its input
  is the whole recording, nothing else, and a device cuts a user's recording into 2.39 s
  windows.

Files: ``<ship-dest>/timnet-<corpus>[-<window>s]-mfcc-<variant>.tflite`` with sidecars and
cards; the record ``deploy-<run-id>.json`` beside the run.
"""

from __future__ import annotations

import argparse

from ser_tf.papers.timnet.recipes import TIMNET_LENGTHS, TIMNET_SAMPLE_RATE

#: Corpus names as the cards spell them.
DISPLAY = {"EMODB": "EMO-DB"}


def ship_prefix(args: argparse.Namespace) -> str:
    """File stem before ``-mfcc-<variant>``: ``timnet-emodb``, ``timnet-ravdess-2.39s``."""
    prefix = f"timnet-{args.dataset.lower()}"
    return prefix if args.window is None else f"{prefix}-{args.window:g}s"


def ship_title(args: argparse.Namespace) -> str:
    corpus = DISPLAY.get(args.dataset, args.dataset)
    window = "" if args.window is None else f", {args.window:g} s window"
    return f"TIM-Net {corpus}{window}, all speakers"


def ship_notes(args: argparse.Namespace, recipe) -> list[str]:
    """TIM-Net's lines for the cards: where the window's length comes from."""
    samples = recipe.num_samples()
    native = TIMNET_LENGTHS[args.dataset]
    if args.window is None:
        source = (f"TIM-Net's length for {args.dataset}: {native} samples at "
                  f"{TIMNET_SAMPLE_RATE} Hz ({native / TIMNET_SAMPLE_RATE:.2f} s), as the "
                  "authors' code pads or crops every recording.")
    else:
        source = (f"set with --window {args.window:g} ({samples} samples at "
                  f"{TIMNET_SAMPLE_RATE} Hz) instead of TIM-Net's {native} samples "
                  f"({native / TIMNET_SAMPLE_RATE:.2f} s) for {args.dataset}; how it "
                  "compares with the training recordings is said above.")
    return [f"Window length: {source}",
            "Features: TIM-Net's 39 librosa-convention MFCCs per 512-sample hop, computed on "
            "the device by ser_tf.lite in NumPy from the sidecar's front-end config."]


def ship(spec, args: argparse.Namespace, experiment, plan) -> dict | None:
    """The runner's intercept: ``--ship`` replaces training (``None`` without it).
    ``spec``: TIM-Net's :class:`~ser_tf.experiments.spec.PaperSpec` (passed in, so this
    module does not import the experiment that imports it)."""
    if not getattr(args, "ship", False):
        return None
    from ser_tf.experiments.deploy import deploy
    from ser_tf.util.quiet import filtered_native_stderr

    with filtered_native_stderr():
        return deploy(spec, args, prefix=ship_prefix(args),
                      title=ship_title(args), dest=args.ship_dest,
                      notes=ship_notes(args, experiment.recipe))

