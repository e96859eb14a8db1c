"""The two sides of the export say which they are in their first line, and the edge side imports no TensorFlow side:
kerascnn/export/ (TensorFlow: converts, audits, reports) and export/ (edge: runs the files, TensorFlow-free)."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TF_SIDE = sorted((ROOT / "kerascnn" / "export").glob("*.py"))
EDGE_SIDE = sorted(
    path
    for pattern in ("*.py", "*.js", "*.mjs")
    for path in (ROOT / "export").rglob(pattern)
    if not {"node_modules", ".cache", "build"} & set(path.relative_to(ROOT).parts)
)


def first_line(path: Path) -> str:
    lines = path.read_text().splitlines()
    return lines[1] if lines[0].startswith("#!") else lines[0]


@pytest.mark.parametrize("path", TF_SIDE, ids=lambda p: p.name)
def test_tensorflow_side_files_say_so(path):
    assert first_line(path).startswith("# TensorFlow side of the export (kerascnn/export/)"), path


@pytest.mark.parametrize("path", EDGE_SIDE, ids=lambda p: str(p.relative_to(ROOT)))
def test_edge_side_files_say_so_and_import_no_tensorflow_side(path):
    comment = "//" if path.suffix in (".js", ".mjs") else "#"
    assert first_line(path).startswith(f"{comment} Edge side of the export (export/)"), path
    if path.suffix == ".py":
        tree = ast.parse(path.read_text())
        imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
        imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
        assert not {name.split(".")[0] for name in imported} & {"tensorflow", "keras", "tf_keras", "kerascnn"}


def test_both_sides_are_found():
    assert len(TF_SIDE) >= 10 and any(p.name == "predict.py" for p in EDGE_SIDE)
