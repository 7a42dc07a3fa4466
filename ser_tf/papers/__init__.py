"""The papers: one package each (``ser_tf/papers/<name>/``), found by their folder.

A paper package exposes ``SPEC`` (:class:`ser_tf.experiments.spec.PaperSpec`) and keeps its
``config.yaml``, ``reference.yaml`` and ``README.md`` beside it. Adding a folder adds a
paper: ``ser-tf train <name>`` and ``ser-tf report --paper <name>`` find it here.
"""

from __future__ import annotations

import importlib
import pkgutil


def paper_names() -> list[str]:
    """The names of the paper packages, sorted."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if m.ispkg)


def get_paper(name: str):
    """The :class:`~ser_tf.experiments.spec.PaperSpec` of paper ``name``."""
    if name not in paper_names():
        raise ValueError(f"unknown paper {name!r}; papers: {', '.join(paper_names())}")
    spec = getattr(importlib.import_module(f"{__name__}.{name}"), "SPEC", None)
    if spec is None:
        raise ValueError(f"ser_tf/papers/{name}/__init__.py defines no SPEC")
    return spec
