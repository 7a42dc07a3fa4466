"""The report's pooled corpus: RAVDESS, SAVEE, TESS and CREMA-D speech, 7 classes.

The common classes are named as everywhere in ser-tf (the report's names in brackets):
anger (angry), disgust, fear, happiness (happy), neutral, sadness (sad), surprise. Each
corpus loader already turns its own codes into these names (SAVEE ``a d f h n sa su``,
TESS ``angry ... ps``, CREMA-D ``ANG DIS FEA HAP NEU SAD``, RAVDESS ``01``–``08``);
:data:`LABEL_MAPPING` then only merges RAVDESS calm into neutral, as the report did.
CREMA-D has no surprise. Complete corpora: 1440 + 480 + 2800 + 7442 = 12,162 files.

Which corpora: ``--corpora ravdess,tess`` or, in the issue's spelling, ``--dataset
RAVDESS+SAVEE+TESS+CREMAD`` (``--dataset RAVDESS``: RAVDESS alone, still 7 classes with calm
merged into neutral); default all four. Where each corpus is: ``--data-dir-<corpus> DIR``,
else ``<root>/<folder>`` with the root from ``--data-root`` (or the shared ``--data-dir``),
else ``$SER_TF_DATA/<folder>``; the folders are the loaders' defaults (``ravdess``,
``savee``, ``tess``, ``cremad``). With one corpus, the root may also be that corpus's own
folder (``--dataset RAVDESS --data-dir ~/corpora/ravdess``, as the other papers' commands
take it). Imports no TensorFlow.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

#: The report's 7 classes, in class-index order.
SEVEN_CLASSES = ("anger", "disgust", "fear", "happiness", "neutral", "sadness", "surprise")
#: Corpus label -> common label, where they differ (the rest keep their names).
LABEL_MAPPING = {"RAVDESS": {"calm": "neutral"}}
#: ``--corpora`` names -> registry names, in the report's order (the rows' order too).
CORPORA = {"ravdess": "RAVDESS", "savee": "SAVEE", "tess": "TESS", "cremad": "CREMAD"}
#: Each corpus's folder under a data root (the loaders' ``folder``, spelled here so
#: building the parser imports no loader).
FOLDERS = {"RAVDESS": "ravdess", "SAVEE": "savee", "TESS": "tess", "CREMAD": "cremad"}
DATA_ENV = "SER_TF_DATA"


def corpus_list(text: str) -> list[str]:
    """argparse type of ``--corpora``: ``"ravdess,tess"`` -> ``["ravdess", "tess"]``
    (report order, each once)."""
    names = [part.strip().lower().replace("-", "") for part in text.split(",") if part.strip()]
    unknown = [n for n in names if n not in CORPORA]
    if not names or unknown:
        raise argparse.ArgumentTypeError(
            f"expected a comma-separated list of {', '.join(CORPORA)}, got {text!r}")
    return [n for n in CORPORA if n in names]


def dataset_corpora(text: str) -> list[str]:
    """argparse type of ``--dataset``: ``"RAVDESS+SAVEE+TESS+CREMAD"`` (any of the four
    joined by ``+``, any case, ``CREMA-D`` too) -> ``--corpora`` names in report order."""
    try:
        return corpus_list(text.replace("+", ","))
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"expected RAVDESS, SAVEE, TESS, CREMAD or several joined by '+' (e.g. "
            f"RAVDESS+SAVEE+TESS+CREMAD), got {text!r}") from None


def add_corpus_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("corpora (pooled)")
    which = group.add_mutually_exclusive_group()
    which.add_argument("--corpora", type=corpus_list, default=list(CORPORA),
                       metavar="NAME,...",
                       help=f"which corpora to pool (default: all, {','.join(CORPORA)})")
    which.add_argument("--dataset", dest="corpora", type=dataset_corpora,
                       metavar="RAVDESS|RAVDESS+SAVEE+TESS+CREMAD",
                       help="the same as --corpora, spelled as the issue does: one corpus or "
                            "several joined by '+'")
    group.add_argument("--data-root", metavar="DIR",
                       help="folder holding one folder per corpus (ravdess/, savee/, tess/, "
                            "cremad/); the shared --data-dir means the same for this paper; "
                            f"default ${DATA_ENV}")
    for flag, corpus in CORPORA.items():
        group.add_argument(f"--data-dir-{flag}", metavar="DIR",
                           help=f"the {corpus} folder (default <root>/{FOLDERS[corpus]})")


def check_corpus_arguments(args: argparse.Namespace) -> str | None:
    """A per-corpus folder given for a corpus left out of ``--corpora``."""
    chosen = set(getattr(args, "corpora", None) or CORPORA)
    for flag in CORPORA:
        if getattr(args, f"data_dir_{flag}", None) and flag not in chosen:
            return f"argument --data-dir-{flag}: {CORPORA[flag]} is not in --corpora"
    if getattr(args, "data_root", None) and getattr(args, "data_dir", None) \
            and Path(args.data_root) != Path(args.data_dir):
        return "argument --data-root: give either --data-root or --data-dir (the same thing here)"
    return None


def corpus_dirs(args: argparse.Namespace) -> dict[str, Path]:
    """``{corpus: folder}`` of the chosen corpora (module docstring), in report order.

    Raises :class:`~ser_tf.util.errors.UserError` naming every missing folder, where it was
    looked for and the flags that fix it."""
    from ser_tf.util.errors import UserError

    root = getattr(args, "data_root", None) or getattr(args, "data_dir", None)
    env = os.environ.get(DATA_ENV)
    found, missing = {}, []
    chosen = getattr(args, "corpora", None) or list(CORPORA)
    for flag in chosen:
        corpus = CORPORA[flag]
        explicit = getattr(args, f"data_dir_{flag}", None)
        if explicit:
            path, how = Path(explicit).expanduser(), f"--data-dir-{flag}"
        elif root:
            path, how = Path(root).expanduser() / FOLDERS[corpus], "--data-root"
            if not path.is_dir() and len(chosen) == 1 and Path(root).expanduser().is_dir():
                # One corpus: the folder given may be the corpus itself.
                path, how = Path(root).expanduser(), "--data-root (the corpus folder itself)"
        elif env:
            path, how = Path(env).expanduser() / FOLDERS[corpus], f"${DATA_ENV}"
        else:
            missing.append(f"{corpus}: no folder given")
            continue
        if path.is_dir():
            found[corpus] = path
        else:
            missing.append(f"{corpus}: {path} is not a folder (from {how})")
    if missing:
        chosen = ",".join(getattr(args, "corpora", None) or CORPORA)
        raise UserError(
            "corpora not found:\n  " + "\n  ".join(missing) + "\nPass --data-root DIR (a "
            "folder with " + ", ".join(f"{FOLDERS[CORPORA[f]]}/" for f in CORPORA) + "), "
            "--data-dir-<corpus> DIR for each, or set $SER_TF_DATA; or pool fewer corpora "
            f"with --corpora (now {chosen}).")
    return found


def load_pooled(args: argparse.Namespace):
    """The pooled 7-class manifest of the chosen corpora; labels that no chosen corpus
    has are left out of the label set (CREMA-D alone has no surprise)."""
    from ser_tf.data.manifest import Manifest
    from ser_tf.data.pooled import pooled_manifest

    dirs = corpus_dirs(args)
    manifest = pooled_manifest(dirs, SEVEN_CLASSES,
                               {c: m for c, m in LABEL_MAPPING.items() if c in dirs},
                               on_bad_audio=getattr(args, "on_bad_audio", "fail"))
    present = {u.label for u in manifest}
    labels = tuple(label for label in SEVEN_CLASSES if label in present)
    if labels == manifest.labels:
        return manifest
    return Manifest(manifest.corpus, labels, manifest.utterances, skipped=manifest.skipped)
