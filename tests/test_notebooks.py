"""Every ``notebooks/*.ipynb`` runs top to bottom without errors and draws its figures.

Notebooks are executed with nbclient in a kernel that is *this* interpreter (the venv's
Python, where ``ser_tf`` is installed): the test writes a kernelspec with
``argv[0] = sys.executable`` into a temporary folder and puts that folder first on
``JUPYTER_PATH``, so neither a user-level ``python3`` kernelspec nor a system Jupyter can
swap in another Python. The first executed cell (added to the in-memory copy only) prints
the kernel's ``sys.executable``, and the test checks it.

The kernel's working directory is a temporary folder, its feature cache
(``SER_TF_CACHE``) too, and ``SER_TF_NOTEBOOK_EPOCHS`` keeps training short. Stored
notebooks must have no outputs (they are cleared before committing).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sys
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
KERNEL_NAME = "ser-tf-test-python"
EPOCHS = os.environ.get("SER_TF_NOTEBOOK_EPOCHS", "3")

#: Minimum number of image/png outputs per notebook (default 1) ...
#: The semantic notebook aligns a synthesised sentence when espeak-ng and aeneas are here.
_CAN_ALIGN = bool(shutil.which("espeak-ng")) and importlib.util.find_spec("aeneas") is not None
EXPECTED_IMAGES = {"lightsernet.ipynb": 3,  # waveform + MFCC, training curves, confusion matrix
                   "timnet.ipynb": 3,  # MFCC, training progress, t-SNE
                   # spectrogram, attention map (Keras, explain TFLite), 1-D attention
                   "attention_fcn.ipynb": 4,
                   # pooled classes, MFCC and mel maps, AWGN copy, training curves
                   "cnn_family.ipynb": 4,
                   # frames and words, training curves (+ the aligned espeak-ng sentence)
                   "semantic.ipynb": 3 if _CAN_ALIGN else 2}
#: ... and its time budget in seconds, kernel start to last cell (default 300).
TIME_LIMITS = {"lightsernet.ipynb": 120, "timnet.ipynb": 120, "attention_fcn.ipynb": 180,
               "cnn_family.ipynb": 120, "semantic.ipynb": 150}


@pytest.fixture
def kernel_env(tmp_path, monkeypatch):
    """A kernelspec for this interpreter on JUPYTER_PATH, plus the notebooks' environment."""
    spec_dir = tmp_path / "jupyter" / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True)
    spec = {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": f"ser-tf test ({sys.executable})", "language": "python",
            "metadata": {"debugger": False}}
    (spec_dir / "kernel.json").write_text(json.dumps(spec), encoding="utf-8")
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("SER_TF_NOTEBOOK_EPOCHS", EPOCHS)
    monkeypatch.setenv("SER_TF_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    return workdir


def test_there_are_notebooks():
    assert NOTEBOOKS, "no notebooks/*.ipynb found"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_is_stored_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    dirty = [i for i, cell in enumerate(nb.cells) if cell.cell_type == "code"
             and (cell.get("outputs") or cell.get("execution_count") is not None)]
    assert not dirty, f"{path.name}: cells {dirty} have stored outputs; clear them before saving"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_executes(path, kernel_env):
    from jupyter_client.kernelspec import KernelSpecManager

    # The kernel the client will start is ours, not a same-named one from elsewhere.
    spec = KernelSpecManager().get_kernel_spec(KERNEL_NAME)
    assert spec.argv[0] == sys.executable

    nb = nbformat.read(path, as_version=4)
    probe = nbformat.v4.new_code_cell("import sys; print(sys.executable, end='')")
    nb.cells.insert(0, probe)
    client = nbclient.NotebookClient(
        nb, kernel_name=KERNEL_NAME, timeout=600, allow_errors=False,
        resources={"metadata": {"path": str(kernel_env)}})
    start = time.perf_counter()
    client.execute()
    elapsed = time.perf_counter() - start

    outputs = [out for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs]
    errors = [out for out in outputs if out.output_type == "error"]
    assert not errors, f"{path.name}: {errors[0].ename}: {errors[0].evalue}"
    executable = "".join(out.get("text", "") for out in nb.cells[0].outputs)
    assert executable == sys.executable, f"kernel ran {executable!r}, not {sys.executable!r}"

    images = [out for out in outputs if out.output_type in ("display_data", "execute_result")
              and "image/png" in out.get("data", {})]
    wanted = EXPECTED_IMAGES.get(path.name, 1)
    assert len(images) >= wanted, f"{path.name}: {len(images)} PNG figures, expected >= {wanted}"
    limit = TIME_LIMITS.get(path.name, 300)
    print(f"{path.name}: executed in {elapsed:.1f} s ({len(images)} figures)")
    assert elapsed < limit, f"{path.name} took {elapsed:.1f} s (limit {limit} s)"
