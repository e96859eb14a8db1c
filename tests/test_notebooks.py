"""The notebooks in notebooks/ run top to bottom (executed with nbclient in a Jupyter kernel of this Python),
and are committed without outputs.

Each notebook writes its runs and exports under $KERASCNN_NOTEBOOK_OUT (runs/notebooks when unset); here that
is a temporary directory shared by the notebooks of one session, so notebook 3 reuses notebook 2's run when
both execute in the same process (it trains its own otherwise).
"""

import json
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
NAMES = [path.stem for path in NOTEBOOKS]


def test_the_three_notebooks_are_there():
    assert NAMES[:3] == ["01_convolution_from_principles", "02_train_and_inspect", "03_quantize_and_deploy"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=NAMES)
def test_notebook_is_committed_without_outputs(path):
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, (
                f"{path.name} cell {index} has outputs: clear them before committing "
                "(python notebooks/clear_outputs.py)"
            )
    assert notebook.metadata.get("kernelspec", {}).get("name") == "python3"


@pytest.fixture(scope="module")
def notebook_out(tmp_path_factory):
    return tmp_path_factory.mktemp("notebook_out")


def _files(directory: Path) -> set[Path]:
    return set(directory.rglob("*")) if directory.exists() else set()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=NAMES)
def test_notebook_runs(path, notebook_out, monkeypatch):
    # the kernel is a child process: it inherits this environment
    monkeypatch.setenv("KERAS_BACKEND", "tensorflow")
    monkeypatch.setenv("KERASCNN_NOTEBOOK_OUT", str(notebook_out))
    monkeypatch.setenv("PYDEVD_DISABLE_FILE_VALIDATION", "1")  # ipykernel's debugger warns about frozen modules
    notebook = nbformat.read(path, as_version=4)
    # an extra first cell reports which Python the kernel runs: it must be this one (the virtualenv's)
    notebook.cells.insert(
        0, nbformat.v4.new_code_cell("import json, sys; print(json.dumps([sys.prefix, sys.version]))")
    )
    before = _files(ROOT / "notebooks"), _files(ROOT / "runs" / "notebooks")

    client = NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    )
    client.execute()  # raises nbclient.exceptions.CellExecutionError at the first failing cell

    prefix, version = json.loads(notebook.cells[0].outputs[0]["text"])
    assert (prefix, version) == (sys.prefix, sys.version), "the kernel does not run the Python that runs pytest"
    silent = [
        index
        for index, cell in enumerate(notebook.cells)
        if cell.cell_type == "code"
        and "plt.show()" in cell.source
        and not any("image/png" in o.get("data", {}) for o in cell.outputs)
    ]
    assert not silent, f"cells {silent} call plt.show() but show no figure (was the inline backend switched off?)"
    assert (_files(ROOT / "notebooks"), _files(ROOT / "runs" / "notebooks")) == before, (
        "the notebook wrote into the repository instead of $KERASCNN_NOTEBOOK_OUT"
    )
