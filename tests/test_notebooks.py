"""Run every notebook in ``notebooks/`` headless, in quick mode, and fail on any error.

Each notebook is executed with nbclient in a kernel of *this* interpreter
(``sys.executable``, through a kernel spec written to a temporary directory), so the test
works in a fresh virtualenv without ``ipykernel install``. The kernel gets
``PYVAE_QUICK=1`` and runs in a temporary directory; the notebook files are not modified.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOKS_DIR = Path(__file__).resolve().parent.parent / "notebooks"
NOTEBOOKS = sorted(NOTEBOOKS_DIR.glob("*.ipynb"))
KERNEL_NAME = "pyvae-test-python"
CELL_TIMEOUT_S = 300


@pytest.fixture
def kernel_env(tmp_path, monkeypatch):
    """A kernel spec for the current interpreter, found via JUPYTER_PATH, and quick mode."""
    spec_dir = tmp_path / "jupyter" / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": f"Python ({sys.executable})",
        "language": "python",
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    jupyter_path = [str(tmp_path / "jupyter"), os.environ.get("JUPYTER_PATH", "")]
    monkeypatch.setenv("JUPYTER_PATH", os.pathsep.join(p for p in jupyter_path if p))
    # The kernel inherits this process's environment: quick mode, and this checkout's
    # pyvae first on the path (not another one the interpreter has installed).
    monkeypatch.setenv("PYVAE_QUICK", "1")
    python_path = [str(NOTEBOOKS_DIR.parent), os.environ.get("PYTHONPATH", "")]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in python_path if p))
    workdir = tmp_path / "run"
    workdir.mkdir()
    return workdir


def test_notebooks_exist():
    assert NOTEBOOKS, f"no notebooks found in {NOTEBOOKS_DIR}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs(path: Path, kernel_env: Path):
    nb = nbformat.read(path, as_version=4)
    # Check which interpreter and which pyvae the kernel runs before anything else.
    check = nbformat.v4.new_code_cell(
        "import sys, pyvae\nprint(sys.executable)\nprint(pyvae.__file__)"
    )
    nb.cells.insert(0, check)
    client = nbclient.NotebookClient(
        nb,
        kernel_name=KERNEL_NAME,
        timeout=CELL_TIMEOUT_S,
        allow_errors=False,
        resources={"metadata": {"path": str(kernel_env)}},
    )
    client.execute()  # raises CellExecutionError on the first failing cell
    printed = "".join(o.get("text", "") for o in nb.cells[0].outputs if o.get("name") == "stdout")
    executable, package = printed.strip().splitlines()
    assert executable == sys.executable, f"the kernel ran {executable}, not {sys.executable}"
    checkout = NOTEBOOKS_DIR.parent
    assert Path(package).resolve().is_relative_to(checkout), f"{package} is not in {checkout}"
    # A figure that is a cell's result must be rendered as an image, not as its repr.
    for index, cell in enumerate(nb.cells[1:]):
        for output in cell.get("outputs", []):
            bundle = output.get("data", {})
            if bundle.get("text/plain", "").startswith("<Figure size"):
                assert "image/png" in bundle, f"cell {index}: figure not rendered: {bundle}"
