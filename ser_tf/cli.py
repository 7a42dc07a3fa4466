"""The ``ser-tf`` command line: one entry point, one subcommand per job.

Subcommands register themselves in :func:`build_parser`; each is a thin layer over a plain
function of the package, so everything the CLI does can be done from Python too.
"""

from __future__ import annotations

import argparse
import sys

from ser_tf import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ser-tf", description="Speech-emotion-recognition reproductions in Keras 3 / TensorFlow.")
    parser.add_argument("--version", action="version", version=f"ser-tf {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    data = commands.add_parser("data", help="download, check and list corpora")
    data_commands = data.add_subparsers(dest="data_command", metavar="ACTION")
    from ser_tf.data import check, download

    download.add_cli(data_commands)
    check.add_cli(data_commands)

    from ser_tf.papers import paper_names

    train = commands.add_parser(
        "train", help="train and evaluate a paper's model (resumable k-fold run)",
        description="ser-tf train PAPER [flags]: the paper's run; `ser-tf train PAPER --help` "
                    "lists its flags.", add_help=False)
    train.add_argument("paper", choices=paper_names(), nargs="?", help="the paper")
    train.add_argument("rest", nargs=argparse.REMAINDER, help="the paper's flags")
    train.set_defaults(handler=_train, train_parser=train)

    from ser_tf.reporting import report

    report.add_cli(commands)

    from ser_tf.reporting import compare

    compare.add_cli(commands)

    explain = commands.add_parser(
        "explain", help="draw where an attention model looked: its spectrogram with the "
                        "attention weights over it",
        description="ser-tf explain FILE --model MODEL: classify FILE with an attention model "
                    "(a .keras file, or an explain .tflite exported with its attention output) "
                    "and save the spectrogram with the attention weights as a PNG.")
    explain.add_argument("audio", help="the recording (any format ser-tf reads)")
    explain.add_argument("--model", required=True,
                         help="a .keras model with an attention layer, or an explain .tflite")
    explain.add_argument("--recipe", help="feature recipe name (a .keras model only; e.g. "
                                          "attention_fcn, attention_fcn_utterance)")
    explain.add_argument("--labels", help="class names, comma-separated (a .keras model only)")
    explain.add_argument("--out", help="the PNG (default: <audio name>-attention.png here)")
    explain.set_defaults(handler=_explain)

    from ser_tf.lite import predict  # TF-free: `ser-tf predict` starts in well under a second

    predict.add_cli(commands)

    from ser_tf.align import command as align_command  # argparse only; aeneas loads on use

    align_command.add_cli(commands)
    return parser


def _train(args) -> int:
    from ser_tf.experiments import runner
    from ser_tf.papers import get_paper

    if args.paper is None:
        args.train_parser.print_help()
        return 2
    spec = get_paper(args.paper)
    return runner.main(spec, args.rest, prog=f"ser-tf train {args.paper}")


def _explain(args) -> int:
    from pathlib import Path

    from ser_tf.reporting.attention_maps import explain

    keras_model = not str(args.model).endswith(".tflite")
    if keras_model and not args.recipe:
        raise ValueError("a .keras model needs --recipe (the feature recipe it was trained "
                         "on); an explain .tflite carries its own")
    if not Path(args.model).is_file():
        raise FileNotFoundError(f"{args.model}: no such model file")
    if args.recipe:
        from ser_tf.papers import get_paper, paper_names

        for name in paper_names():  # a paper's package registers its recipes when imported
            get_paper(name)
    out = Path(args.out) if args.out else Path(f"{Path(args.audio).stem}-attention.png")
    labels = args.labels.split(",") if args.labels else None
    result = explain(args.audio, args.model, out, recipe=args.recipe, labels=labels)
    print(f"{args.audio}: {result['label']} - attention map in {result['png']}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["train"] and argv[1:2] in (["-h"], ["--help"]):
        # `train` has no -h of its own (its flags after PAPER belong to the paper), so
        # `ser-tf train --help` is answered here: the list of papers and how to go on.
        parser.parse_args(["train"]).train_parser.print_help()
        return 0
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 0 if args.command is None else 2
    from ser_tf.util.errors import UserError

    try:
        return int(handler(args) or 0)
    except (UserError, FileNotFoundError, ValueError, KeyError, OSError) as err:
        # Expected user-facing failures: one clear line, no traceback.
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"ser-tf: error: {message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
