"""Clears the outputs and execution counts of notebooks, in place, before they are committed
(tests/test_notebooks.py checks it). Needs only nbformat, which the dev extras install.

Usage, from the repository root:
    .venv/bin/python notebooks/clear_outputs.py notebooks/*.ipynb
"""

import sys

import nbformat


def clear(path: str) -> None:
    notebook = nbformat.read(path, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    nbformat.write(notebook, path)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    for name in sys.argv[1:]:
        clear(name)
