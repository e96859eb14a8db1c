"""The import layering, read from the source with `ast`: kerascnn_edge <- layers <- models <- data <- saving <- train
<- export, nothing lower imports anything higher. The edge side (the top-level export/ folder, its package
export/kerascnn_edge: the distribution kerascnn-edge) imports no TensorFlow, Keras or kerascnn, only NumPy, Pillow,
ai-edge-litert (and its flatbuffers), MediaPipe and tflite-micro, and finds its own modules as a package (no
sys.path edits); kerascnn may import it (it writes the manifest with its Manifest), being above it.

A module's unit is its subpackage (kerascnn/train/*.py is "train") or, for a module directly in kerascnn/, its name.
A unit may import itself and units of a lower rank only; rundir, cli and settings
(the run directory, exit codes, the settings' declarations) are below all.
Inside a unit, no two modules import each other, directly or around a circle (`import_circles`).
"""

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RANKS = {
    "rundir": 0,  # the run directory: its file names, `Run` (which opens and writes it), atomic writes, the lock
    "cli": 0,  # the command lines' exit codes
    "settings": 0,  # the settings' declarations (flags, help, roles) and their errors
    "layers": 1,
    "lr_schedule": 1,  # WarmupLinearDecay, which training checkpoints hold
    "models": 2,
    "data": 3,
    "saving": 4,  # registers for load_model what layers, data and lr_schedule define; train and export load with it
    "optimize": 5,  # the tf_keras twin, QAT and pruning: used by export
    "train": 5,
    "export": 6,
}
EDGE_FORBIDDEN = {"tensorflow", "keras", "tf_keras", "tensorflow_model_optimization", "kerascnn"}


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, dotted module name) of every import in the file, at any depth (functions import lazily)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            # `from kerascnn import models` imports the unit models
            names = [f"{node.module}.{alias.name}" for alias in node.names] if node.module == "kerascnn" else []
            found += [(node.lineno, name) for name in names or [node.module]]
        elif isinstance(node, ast.ImportFrom):
            found.append((node.lineno, "." * node.level + (node.module or "")))
    return found


def unit_of(module: str) -> str | None:
    """The unit of a dotted kerascnn module name ("kerascnn.train.config" -> "train"); None for the package root."""
    parts = module.split(".")
    return parts[1] if parts[0] == "kerascnn" and len(parts) > 1 else None


def layering_violations(package: Path) -> list[str]:
    violations = []
    for path in sorted(package.rglob("*.py")):
        relative = path.relative_to(package.parent).with_suffix("")
        if relative.name == "__init__" and len(relative.parts) == 2:
            continue  # kerascnn/__init__.py: the lazy root, which loads subpackages on first use
        own = unit_of(".".join(relative.parts))
        for line, module in imported_modules(path):
            if module.startswith("."):
                violations.append(f"{path}:{line}: relative import {module} (use kerascnn.<unit>)")
                continue
            other = unit_of(module)
            if other is None or other == own:
                continue
            if other not in RANKS or own not in RANKS:
                violations.append(f"{path}:{line}: {own} -> {other}: a unit without a rank (add it to RANKS)")
            elif RANKS[other] >= RANKS[own]:
                violations.append(f"{path}:{line}: {own} (rank {RANKS[own]}) imports {module} (rank {RANKS[other]})")
    return violations


def test_nothing_lower_imports_anything_higher():
    assert layering_violations(ROOT / "kerascnn") == []


def test_the_check_finds_an_upward_import(tmp_path):
    """The test above can fail: data importing train, and models importing export lazily inside a function."""
    package = tmp_path / "kerascnn"
    (package / "data").mkdir(parents=True)
    (package / "models").mkdir()
    (package / "data" / "stream.py").write_text("from kerascnn.train import trainer\n")
    (package / "models" / "vgg.py").write_text("def f():\n    from kerascnn import export\n")
    (package / "models" / "ok.py").write_text("from kerascnn import layers\nimport kerascnn.models.vgg\n")
    found = layering_violations(package)
    assert len(found) == 2 and "data (rank 3) imports kerascnn.train" in found[0], found
    assert "models (rank 2) imports kerascnn.export (rank 6)" in found[1], found


def test_train_may_load_through_saving_but_saving_may_not_import_train(tmp_path):
    """saving sits below train: a run's model loads (`kerascnn.saving.load_model`) without anything of train, and
    train loads through it. It once registered train's learning-rate schedule (now kerascnn.lr_schedule)."""
    package = tmp_path / "kerascnn"
    (package / "train").mkdir(parents=True)
    (package / "train" / "trainer.py").write_text("from kerascnn.saving import load_model\n")
    (package / "saving.py").write_text("def register():\n    import kerascnn.lr_schedule\n")
    assert layering_violations(package) == []
    (package / "saving.py").write_text("def register():\n    import kerascnn.train.schedules\n")
    found = layering_violations(package)
    assert len(found) == 1 and "saving (rank 4) imports kerascnn.train.schedules (rank 5)" in found[0], found


def module_graph(package: Path) -> dict[str, set[str]]:
    """Every module of `package` (dotted name) -> the modules of `package` it imports, at any depth. `from a.b import
    c` imports the module a.b.c when there is one; imports of a package's __init__ (a facade that loads its
    modules) are left out: Python runs it before any of its modules anyway."""
    modules = {".".join(p.relative_to(package.parent).with_suffix("").parts): p for p in package.rglob("*.py")}
    modules = {name.removesuffix(".__init__"): path for name, path in modules.items()}
    packages = {name for name, path in modules.items() if path.name == "__init__.py"}
    graph = {}
    for name, path in modules.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                found |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found |= {f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module
                          for a in node.names}  # fmt: skip
        graph[name] = {m for m in found if m in modules and m not in packages and m != name}
    return graph


def import_circles(package: Path) -> list[list[str]]:
    """The circles of `module_graph(package)`, each as the modules around it, first to first."""
    graph, circles, done = module_graph(package), [], set()

    def visit(module: str, path: list[str]) -> None:
        for other in sorted(graph[module]):
            if other in path:
                circle = path[path.index(other) :] + [other]
                if not any(set(circle) == set(seen) for seen in circles):
                    circles.append(circle)
            elif other not in done:
                visit(other, [*path, other])
        done.add(module)

    for module in sorted(graph):
        if module not in done:
            visit(module, [module])
    return circles


def test_no_import_circles_between_modules():
    """Inside a unit too: report <-> tflm imported each other (one lazily), which the ranks cannot see."""
    assert import_circles(ROOT / "kerascnn") == []


def test_the_circle_check_finds_a_lazy_circle_inside_a_unit(tmp_path):
    package = tmp_path / "kerascnn"
    (package / "export").mkdir(parents=True)
    (package / "export" / "__init__.py").write_text("from kerascnn.export.report import markdown\n")
    (package / "export" / "report.py").write_text("def markdown():\n    from kerascnn.export.tflm import section\n")
    (package / "export" / "tflm.py").write_text("from kerascnn.export import report as reports\n")
    (package / "export" / "edge.py").write_text("from kerascnn.export import tflm\n")
    assert import_circles(package) == [["kerascnn.export.report", "kerascnn.export.tflm", "kerascnn.export.report"]]
    assert layering_violations(package) == []  # the ranks alone let it pass


def edge_files() -> list[Path]:
    """The edge side's own Python files: not installed packages (node_modules, .venv-edge) nor caches (export/pi's
    .cache holds downloaded arm64 wheels)."""
    skip = {"node_modules", ".venv-edge"}

    def own(path: Path) -> bool:
        parts = path.relative_to(ROOT).parts
        return not skip & set(parts) and not any(part.startswith(".") for part in parts)

    return [p for p in sorted((ROOT / "export").rglob("*.py")) if own(p)]


@pytest.mark.parametrize("path", edge_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_the_edge_side_imports_no_tensorflow_keras_or_kerascnn(path):
    bad = [(line, m) for line, m in imported_modules(path) if m.split(".")[0] in EDGE_FORBIDDEN]
    assert bad == [], f"{path.relative_to(ROOT)} imports {bad}: the edge side runs without TensorFlow"


def test_the_edge_check_sees_the_edge_files():
    names = {p.name for p in edge_files()}
    assert {"predict.py", "check_mediapipe.py"} <= names


EDGE_PACKAGE = ROOT / "export" / "kerascnn_edge"
EDGE_ALLOWED = {"numpy", "PIL", "ai_edge_litert", "flatbuffers", "mediapipe", "tflite_micro", "kerascnn_edge"}


@pytest.mark.parametrize("path", sorted(EDGE_PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT)))
def test_the_edge_package_needs_its_declared_dependencies_only_and_edits_no_sys_path(path):
    """kerascnn-edge declares numpy, Pillow, ai-edge-litert and the extras mediapipe and tflite-micro: an import of
    anything else would fail on a Raspberry Pi that installed the wheel."""
    roots = {module.split(".")[0] for _, module in imported_modules(path)}
    assert roots - EDGE_ALLOWED - set(sys.stdlib_module_names) == set(), path
    assert "sys.path" not in path.read_text(), f"{path.relative_to(ROOT)}: import the package's modules by name"


def test_kerascnn_may_import_the_edge_package_below_it(tmp_path):
    package = tmp_path / "kerascnn"
    (package / "export").mkdir(parents=True)
    (package / "export" / "manifest.py").write_text("from kerascnn_edge.manifest import Manifest\n")
    assert layering_violations(package) == []
    assert imported_modules(EDGE_PACKAGE / "manifest.py")  # the edge check reads the package's files
    assert {"manifest.py", "predict.py", "check.py"} <= {p.name for p in edge_files()}
