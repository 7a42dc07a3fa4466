"""Semantic SER experiment: ``ser-tf train semantic --dataset SEWA --variant fusion``.

SEWA (the paper's corpus) or an EMO-DB / RAVDESS proxy (:mod:`.corpora`) framed into
sequence records once, the model of :mod:`ser_tf.models.semantic_fusion` (variant fusion,
audio or text: the paper's ablation), Adam, ``1 - CCC`` on the real frames of chunks of
``--chunk-frames`` frames (:mod:`.task`), the best validation CCC kept; per fold CCC,
Pearson r and RMSE of every output on every real test frame; each fold exported to TFLite
(:mod:`.export`). Defaults: ``config.yaml`` beside this file.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from ser_tf.experiments import runner
from ser_tf.experiments.common import positive_float, positive_int
from ser_tf.experiments.spec import Experiment, PaperSpec, shared_flag_defaults

PAPER = "semantic"
PROG = "python -m ser_tf.experiments.semantic"
DATASETS = ("SEWA", "EMODB", "RAVDESS")
VARIANTS = ("fusion", "audio", "text")
WEIGHTINGS = ("mean", "inverse_index")
ALIGNMENTS = ("auto", "aeneas", "uniform")


@dataclass(frozen=True)
class FrameRecipe:
    """What the model reads, for the run's config: 0.1 s frames of 22.05 kHz audio, SEWA's
    subject and partner halves or a proxy corpus's subject half (:mod:`.corpora`). Nothing
    is extracted: the records hold the samples."""

    name: str = "semantic_frames"
    sample_rate: int = 22050
    frame_seconds: float = 0.1
    frame_len: int = 4410
    layout: str = "subject half, partner half"

    def config(self) -> dict:
        return {"name": self.name, "sample_rate": self.sample_rate,
                "frame_seconds": self.frame_seconds, "frame_len": self.frame_len,
                "layout": self.layout}


def add_arguments(parser: argparse.ArgumentParser, cfg: dict) -> None:
    """The semantic model's own flags (no TensorFlow import: ``--help`` stays quick)."""
    parser.add_argument("--dataset", type=str.upper, choices=DATASETS, default=cfg["dataset"],
                        help="SEWA (the paper's corpus, continuous labels; default protocol "
                             "paper: Train -> Devel) or a proxy: EMODB, RAVDESS (categories "
                             "mapped to arousal/valence; default protocol speaker)")
    parser.add_argument("--variant", choices=VARIANTS, default=cfg["variant"],
                        help="fusion: audio + text (the paper); audio or text alone (its "
                             "ablation)")
    parser.add_argument("--word-vectors", metavar="PATH",
                        help="pretrained word vectors (word2vec text/binary, GloVe, fastText "
                             ".vec) for the embedding; default: random, trained")
    parser.add_argument("--freeze-embeddings", action="store_true",
                        help="keep the word vectors fixed (with --word-vectors)")
    parser.add_argument("--epochs", type=positive_int, default=cfg["epochs"])
    parser.add_argument("--batch-size", type=positive_int, default=cfg["batch_size"],
                        help="chunks per batch")
    parser.add_argument("--learning-rate", type=positive_float, default=cfg["learning_rate"])
    parser.add_argument("--chunk-frames", type=positive_int, default=cfg["chunk_frames"],
                        help="frames (0.1 s each) per training and evaluation sequence")
    parser.add_argument("--weighting", choices=WEIGHTINGS, default=cfg["weighting"],
                        help="mean: 1 - CCC averaged over the outputs (default); "
                             "inverse_index: output i weighted 1/i, as the official code did "
                             "by mistake")
    parser.add_argument("--align", choices=ALIGNMENTS, default=cfg["alignment"],
                        help="word timing: aeneas forced alignment, uniform spreading, or "
                             "auto (aeneas when installed)")
    parser.add_argument("--width", type=positive_float, default=1.0,
                        help="scale every layer's size (filters, units) by this factor "
                             "(1 = the paper's; smaller for tests and small devices)")
    parser.add_argument("--records-dir", help="where the framed corpus is written (default: "
                                              "the cache folder's semantic/)")
    parser.add_argument("--no-export", action="store_true",
                        help="skip the TFLite export of every fold")
    if hasattr(parser, "add_check"):
        parser.add_check(_check_arguments)


def _check_arguments(args) -> str | None:
    if args.protocol is None:  # the corpus's natural protocol (help of --protocol)
        args.protocol = "paper" if args.dataset == "SEWA" else "speaker"
    if args.freeze_embeddings and not args.word_vectors:
        return "argument --freeze-embeddings: needs --word-vectors (random vectors frozen " \
               "would never learn)"
    if args.word_vectors and not Path(args.word_vectors).is_file():
        return f"argument --word-vectors: {args.word_vectors}: no such file"
    if args.protocol == "paper" and args.dataset != "SEWA":
        return (f"argument --protocol: 'paper' is SEWA's Train/Devel split; use --protocol "
                f"speaker for {args.dataset}")
    return None


def model_settings(args, cfg: dict) -> dict:
    """``build_semantic_fusion`` keywords of these flags (``--width`` scales the sizes)."""
    scale = float(args.width)
    size = (lambda n: max(1, int(round(n * scale))))
    model = cfg["model"]
    return {"variant": args.variant, "conv_filters": [size(n) for n in model["conv_filters"]],
            "conv_kernels": list(model["conv_kernels"]), "conv_pools": list(model["conv_pools"]),
            "dropout": float(model["dropout"]), "audio_fc": size(model["audio_fc"]),
            "stream_units": size(model["stream_units"]), "lstm_units": size(model["lstm_units"]),
            "lstm_layers": int(model["lstm_layers"]),
            "trainable_embeddings": not args.freeze_embeddings}


def _word_vectors_entry(path) -> dict | None:
    if not path:
        return None
    from ser_tf.util.jsonio import content_hash

    return {"file": Path(path).name, "sha256": content_hash(path)}


def model_builder(settings: dict, vocabulary, cfg: dict, word_vectors: str | None):
    """``build(n_outputs) -> keras.Model``; the word vectors are read once, at first use."""
    cache = {}

    def build(n_outputs: int):
        from ser_tf.models.semantic_fusion import build_semantic_fusion

        if word_vectors and "matrix" not in cache:
            from ser_tf.features.word_vectors import embedding_matrix, load_word_vectors

            words, vectors = load_word_vectors(word_vectors)
            cache["matrix"] = embedding_matrix(vocabulary, words, vectors, oov="grow", seed=0)
        matrix = cache.get("matrix")
        dim = matrix.shape[1] if matrix is not None else int(cfg["embedding_dim"])
        return build_semantic_fusion(vocab_size=len(vocabulary), embedding_dim=dim,
                                     embedding_matrix=matrix, n_outputs=n_outputs, **settings)

    return build


class VariantSource:
    """A :class:`~ser_tf.training.sequence_source.SequenceRecordSource` serving only the
    inputs a single-modality variant takes (everything else is the wrapped source's)."""

    def __init__(self, source, inputs):
        self.source, self.inputs = source, tuple(inputs)

    def __getattr__(self, name):
        return getattr(self.source, name)

    def dataset(self, ids, *, task=None, training: bool, batch_size: int, seed=None,
                repeat: bool = False, consumed: int = 0):
        ds = self.source.dataset(ids, task=task, training=training, batch_size=batch_size,
                                 seed=seed, repeat=repeat, consumed=consumed)
        if len(self.inputs) == 2:
            return ds
        keep = self.inputs
        return ds.map(lambda x, y, w: ({k: x[k] for k in keep}, y, w))


def _source_factory(args, manifest, model_inputs):
    def make(cache_dir, quiet):
        from ser_tf.features.cache import default_cache_dir
        from ser_tf.papers.semantic.corpora import prepare_records
        from ser_tf.training.sequence_source import SequenceRecordSource

        root = Path(args.records_dir) if args.records_dir else \
            Path(cache_dir or default_cache_dir()) / "semantic"
        folder = prepare_records(manifest, root, alignment=args.align, quiet=quiet)
        return VariantSource(SequenceRecordSource(folder, chunk_frames=args.chunk_frames),
                             model_inputs)

    return make


def setup(args: argparse.Namespace, cfg: dict) -> Experiment:
    """The :class:`Experiment` ``args`` describe."""
    from ser_tf.data import load_manifest
    from ser_tf.papers.semantic.corpora import (build_vocabulary, frame_layout_of,
                                                frame_len_of, outputs_of, resolve_alignment)
    from ser_tf.papers.semantic.folds import SPLIT
    from ser_tf.training.tasks import FrameRegressionTask
    from ser_tf.training.classifier import FitConfig

    manifest = load_manifest(args.dataset, args.data_dir, on_bad_audio=args.on_bad_audio)
    args.align = resolve_alignment(args.align)
    vocabulary = build_vocabulary(manifest)
    settings = {**model_settings(args, cfg), "frame_len": frame_len_of(manifest.corpus)}
    recipe = FrameRecipe(frame_len=frame_len_of(manifest.corpus),
                         layout=frame_layout_of(manifest.corpus))
    outputs = outputs_of(manifest.corpus)
    task = FrameRegressionTask(outputs, weighting=args.weighting)
    fit = FitConfig(epochs=args.epochs, batch_size=args.batch_size,
                    learning_rate=args.learning_rate, beta_2=float(cfg["beta_2"]),
                    optimizer_params={"clipnorm": float(cfg["clipnorm"])},
                    loss="1-ccc (masked, per frame)", monitor=cfg["monitor"],
                    checkpoint="best-val", seed=args.seed,
                    deterministic=args.deterministic, jit_compile=False)
    inputs = {"fusion": ("audio", "words"), "audio": ("audio",), "text": ("words",)}[args.variant]
    build = model_builder(settings, vocabulary, cfg, args.word_vectors)
    experiment = Experiment(
        manifest=manifest, recipe=recipe, build_model=build, fit=fit, task=task,
        paper_split=SPLIT, source=_source_factory(args, manifest, inputs),
        config_extra={"model": settings, "chunk_frames": args.chunk_frames,
                      "alignment": args.align, "vocabulary_size": len(vocabulary),
                      "word_vectors": _word_vectors_entry(args.word_vectors),
                      "targets": ("per-frame SEWA annotations" if manifest.corpus == "SEWA"
                                  else "category -> arousal/valence, NRC VAD v1.0 "
                                       "(ser_tf.data.dimensions), constant per utterance")},
        notes=() if manifest.corpus == "SEWA" else (
            f"{manifest.corpus} is a PROXY: categorical labels mapped to constant "
            "arousal/valence targets; not comparable with the paper's SEWA figures",))
    if not args.no_export:
        experiment.on_fold_done = lambda work_dir, fold, source, result: _export_fold(
            work_dir, fold, build, task, args, source)
    experiment.after_folds = _records_details
    return experiment


def _records_details(work_dir, folds, source, results):
    """The record's ``sequence_records`` section: how the records the run read were made,
    from their ``preparation.json`` (how many recordings got aeneas word times and how
    many fell back to uniform timing, frame layout, vocabulary size)."""
    from ser_tf.util.jsonio import read_json

    root = Path(source.root)
    return {"sequence_records": {"folder": root.name,
                                 **read_json(root / "preparation.json")}}, None


def _export_fold(work_dir, fold, build, task, args, source) -> None:
    """``fold_XX/tflite/``: the fold's chosen weights as TFLite (idempotent)."""
    from ser_tf.papers.semantic.export import export_tflite
    from ser_tf.training.rundir import RunDir

    fold_dir = RunDir(Path(work_dir)).fold(fold)
    out = Path(fold_dir.path) / "semantic_tflite"
    name = f"{PAPER}-{args.dataset.lower()}-{args.variant}"
    if (out / f"{name}.json").is_file():
        return
    model = build(task.num_outputs)
    model.load_weights(fold_dir.weights)
    vocabulary = Path(source.root) / "vocabulary.json"
    export_tflite(model, out, name=name, chunk_frames=args.chunk_frames, outputs=task.outputs,
                  vocabulary=str(vocabulary))


SPEC = PaperSpec(
    name=PAPER, title="Semantic SER, audio + text (Tzirakis et al., ICASSP 2021)",
    description="Raw-audio CNN and word embeddings fused by attention, 2-layer LSTM, "
                "per-frame arousal/valence/liking (Tzirakis, Nguyen, Zafeiriou & Schuller, "
                "ICASSP 2021) on SEWA, or an EMO-DB / RAVDESS proxy.",
    package="ser_tf.papers.semantic", setup=setup, add_arguments=add_arguments,
    # protocol None: SEWA takes its Train/Devel split ("paper"), the proxies speaker folds.
    parser_defaults=lambda cfg: {**shared_flag_defaults(cfg), "protocol": None},
    protocols=("paper", "speaker"), default_protocol="speaker", default_seed=1)


build_parser, plan, run, main = runner.commands(SPEC, PROG)
