"""Several corpora pooled into one manifest with a common label set.

Papers that train on RAVDESS, SAVEE, TESS and CREMA-D together (the CNN family) need one
:class:`~ser_tf.data.manifest.Manifest` over all of them: :func:`pooled_manifest` loads each
corpus with its own loader, maps every corpus's labels onto the common set (e.g. RAVDESS
calm → neutral) and keeps the corpora apart where it matters:

- utterance ids and speakers are prefixed by the corpus (``"SAVEE:DC_a01"``, speaker
  ``"SAVEE:DC"``): two corpora can share a file stem or a speaker code (RAVDESS actor
  ``"01"``), and a speaker-independent split must never merge two people;
- ``Utterance.corpus`` stays the corpus the recording comes from, and
  ``extra["source_label"]`` the label its own loader gave;
- nothing is dropped silently: a label that maps to no common class must be mapped to
  ``None`` explicitly, and every file a loader skipped stays listed in ``skipped``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import replace

from ser_tf.data.manifest import Manifest

#: Between the corpus name and the corpus's own utterance id or speaker.
PREFIX_SEPARATOR = ":"


def prefixed(corpus: str, name: str) -> str:
    """``name`` (an utterance id or a speaker) made unique across corpora."""
    return f"{corpus}{PREFIX_SEPARATOR}{name}"


def pooled_name(corpora: Sequence[str]) -> str:
    """The pooled manifest's corpus name: the corpus names joined by ``-`` in the given
    order (``RAVDESS-SAVEE-TESS-CREMAD``); one corpus keeps its own name. Safe as a folder
    name (run records go to ``<results>/<paper>/<corpus>/``)."""
    return "-".join(corpora)


def corpus_key(name: str) -> str:
    """The registry name of a corpus (``"crema-d"`` → ``"CREMAD"``)."""
    from ser_tf.data import get_corpus

    return get_corpus(name).name


def pooled_manifest(corpora: Mapping[str, object], labels: Sequence[str],
                    mapping: Mapping[str, Mapping[str, str | None]] | None = None, *,
                    name: str | None = None, on_bad_audio: str = "fail",
                    check_audio: bool = True,
                    options: Mapping[str, Mapping] | None = None) -> Manifest:
    """One manifest over several corpora.

    Args:
        corpora: ``{corpus name: data folder}`` in the order the rows should come
            (``None`` as folder: ``$SER_TF_DATA/<corpus folder>``). Names are registry
            names, case-insensitive (``"crema-d"`` works).
        labels: the common label set, in its class-index order.
        mapping: per corpus, ``{its label: common label}``; ``None`` as common label leaves
            that class out. A corpus label not listed keeps its name, which must then be
            in ``labels`` (else ``ValueError``: nothing is left out unless asked).
        name: the pooled corpus name (default :func:`pooled_name`).
        on_bad_audio, check_audio: as :func:`ser_tf.data.load_manifest`, for every corpus.
        options: per corpus, loader options (``{"RAVDESS": {"include_song": True}}``).

    Returns:
        A :class:`Manifest` whose ``corpus`` is ``name``, ``labels`` the common set, rows
        corpus by corpus in each loader's order, ids and speakers prefixed (module
        docstring), ``skipped`` the loaders' skipped files together.
    """
    from ser_tf.data import load_manifest

    labels = tuple(labels)
    if not corpora:
        raise ValueError("no corpora to pool")
    if len(set(labels)) != len(labels) or not labels:
        raise ValueError(f"labels must be distinct and non-empty, got {list(labels)}")
    keys = {corpus_key(c): c for c in corpora}
    if len(keys) != len(corpora):
        raise ValueError(f"a corpus is named twice: {list(corpora)}")
    mapping = {corpus_key(c): dict(m) for c, m in (mapping or {}).items()}
    options = {corpus_key(c): dict(o) for c, o in (options or {}).items()}
    unknown = sorted((set(mapping) | set(options)) - set(keys))
    if unknown:
        raise ValueError(f"mapping or options name corpora that are not pooled: {unknown}")

    utterances, skipped = [], []
    for key, given in keys.items():
        manifest = load_manifest(key, corpora[given], on_bad_audio=on_bad_audio,
                                 check_audio=check_audio, **options.get(key, {}))
        to_common = _label_map(key, manifest.labels, mapping.get(key, {}), labels)
        for u in manifest:
            common = to_common[u.label]
            if common is None:
                continue
            utterances.append(replace(
                u, utterance_id=prefixed(key, u.utterance_id),
                speaker=prefixed(key, str(u.speaker)), label=common,
                extra={**u.extra, "source_label": u.label}))
        skipped += [{**entry, "corpus": key} for entry in manifest.skipped]
    return Manifest(corpus=name or pooled_name(list(keys)), labels=labels,
                    utterances=utterances, skipped=skipped)


def _label_map(corpus: str, own: Sequence[str], mapping: Mapping[str, str | None],
               labels: Sequence[str]) -> dict[str, str | None]:
    """``{corpus label: common label or None}``, every corpus label accounted for."""
    stray = sorted(set(mapping) - set(own))
    if stray:
        raise ValueError(f"{corpus}: the mapping names labels the corpus does not have: "
                         f"{stray} (its labels: {list(own)})")
    result = {label: mapping.get(label, label) for label in own}
    unmapped = sorted(f"{k} -> {v}" for k, v in result.items()
                      if v is not None and v not in labels)
    if unmapped:
        raise ValueError(f"{corpus}: labels outside the common set {list(labels)}: "
                         f"{unmapped}; map them to a common label, or to None to leave "
                         "them out")
    return result


def counts_by_corpus(manifest: Manifest) -> dict[str, dict[str, int]]:
    """``{corpus: {label: utterances}}`` of a pooled manifest (labels in manifest order,
    zero counts included: a corpus without a class shows it)."""
    counts: dict[str, Counter] = {}
    for u in manifest:
        counts.setdefault(u.corpus, Counter())[u.label] += 1
    return {corpus: {label: c.get(label, 0) for label in manifest.labels}
            for corpus, c in counts.items()}
