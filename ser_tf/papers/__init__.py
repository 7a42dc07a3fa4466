"""The papers: one package each (``ser_tf/papers/<name>/``), found by their folder.

A paper package exposes ``SPEC`` (:class:`ser_tf.experiments.spec.PaperSpec`) and keeps its
``config.yaml``, ``reference.yaml`` and ``README.md`` beside it. Adding a folder adds a
paper: ``ser-tf train <name>`` and ``ser-tf report --paper <name>`` find it here.

A paper kept outside this folder (your own package) joins the registry through
:func:`register_paper`, or, for the command line, by naming its module in
``$SER_TF_PAPERS`` (comma-separated, e.g. ``SER_TF_PAPERS=mylab.papers.mynet``): the module
must define ``SPEC``.
"""

from __future__ import annotations

import importlib
import os
import pkgutil

#: Environment variable naming extra paper modules (comma-separated) for the command line.
PAPERS_ENV = "SER_TF_PAPERS"

_REGISTERED: dict = {}  # name -> PaperSpec of papers outside this folder


def _spec_of(module_name: str):
    spec = getattr(importlib.import_module(module_name), "SPEC", None)
    if spec is None:
        raise ValueError(f"{module_name} defines no SPEC (a ser_tf.experiments.spec.PaperSpec)")
    return spec


def _from_environment() -> None:
    for module_name in filter(None, (m.strip() for m in os.environ.get(PAPERS_ENV, "").split(","))):
        try:
            spec = _spec_of(module_name)
        except ImportError as error:
            raise ValueError(f"${PAPERS_ENV} names {module_name!r}, which cannot be imported "
                             f"({error})") from None
        _REGISTERED.setdefault(spec.name, spec)


def _package_names() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if m.ispkg)


def register_paper(spec) -> None:
    """Add a paper defined outside ``ser_tf/papers`` (``spec.package`` holds its
    ``config.yaml``); a name already taken by another paper is an error."""
    if spec.name in _package_names() or _REGISTERED.get(spec.name, spec) is not spec:
        raise ValueError(f"a paper named {spec.name!r} is already registered")
    _REGISTERED[spec.name] = spec


def unregister_paper(name: str) -> None:
    """Remove a paper added by :func:`register_paper` (tests, notebooks)."""
    _REGISTERED.pop(name, None)


def paper_names() -> list[str]:
    """The names of the paper packages and of the registered papers, sorted."""
    _from_environment()
    return sorted(set(_package_names()) | set(_REGISTERED))


def get_paper(name: str):
    """The :class:`~ser_tf.experiments.spec.PaperSpec` of paper ``name``."""
    names = paper_names()
    if name not in names:
        raise ValueError(f"unknown paper {name!r}; papers: {', '.join(names)}")
    if name in _REGISTERED:
        return _REGISTERED[name]
    return _spec_of(f"{__name__}.{name}")
