"""The documentation: the site builds with warnings as errors, its code runs (or says why not), the README stays a
page whose figures are the results file's, and the docstrings' examples run as doctests."""

import doctest
import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
NOT_RUN = re.compile(r"<!-- not run: (\S.*) -->")
FENCE = re.compile(r"^```([^\n]*)\n(.*?)^```\n", re.S | re.M)

# The docstrings whose `>>>` examples run as doctests, and those that cannot, with why.
DOCTESTS = [
    "kerascnn.layers.conv.Conv2D",
    "kerascnn.layers.blocks.ConvBNAct",
    "kerascnn.layers.heads.GAPHead",
    "kerascnn.layers.padding.conv_output_size",
    "kerascnn.layers.pooling.MaxPool2D",
    "kerascnn.layers.pooling.AvgPool2D",
    "kerascnn.layers.pooling.GlobalAvgPool2D",
    "kerascnn.layers.pooling.GlobalMaxPool2D",
    "kerascnn.train.distribute.cluster_from",
    "kerascnn.models.registry.create",
    "kerascnn.models.registry.register",
    "kerascnn.models.registry.names",
    "kerascnn.models.features.head_features",
    "kerascnn.models.input_size.smallest_input_size",
    "kerascnn.train.small_data.unconverged",
    "kerascnn.train.small_data.keep_rule",
    "kerascnn.settings.setting",
    "kerascnn.settings.SettingError",
    "kerascnn.export.config.ExportConfig",
    "kerascnn.data.pipeline.NormalizedImages",
    "kerascnn.export.audit.AuditError",
    "kerascnn.export.audit.op_counts",
    "kerascnn.export.audit.audit",
    "kerascnn.export.converter.ConversionError",
    "kerascnn.export.converter.convert",
    "kerascnn.export.runner.TFLiteClassifier",
    "kerascnn.export.presets.QuantizationPreset",
    "kerascnn.optimize.legacy.tf_keras_and_tfmot",
    "kerascnn.optimize.standard.NoStandardEquivalent",
    "kerascnn.optimize.standard.standard_twin",
    "kerascnn.optimize.standard.to_keras_builtins",
    "kerascnn.optimize.twin.TwinMismatch",
    "kerascnn.optimize.twin.to_tf_keras",
    "kerascnn.optimize.twin.check_twin",
    "kerascnn.optimize.tfmot_tuning.quantization_aware",
    "kerascnn.optimize.tfmot_tuning.prune",
    "kerascnn.optimize.tfmot_tuning.sparsity_per_layer",
    "kerascnn.train.config.TrainConfig",
    "kerascnn.train.config.resolve",
]
NOT_DOCTESTS = {
    "kerascnn.cli.user_error": "a code fragment (`return` outside a function), not a session",
    "kerascnn.saving.load_model": "needs a trained run in runs/quick",
    "kerascnn.rundir.is_run": "needs a trained run in runs/quick",
    "kerascnn.data.datasets.load_dataset": "loads all of Fashion-MNIST (seconds, 400 MB as float32)",
    "kerascnn.data.spec.DataSpec": "needs a folder of photos",
    "kerascnn.data.stream.open": "needs a folder of photos and a model",
    "kerascnn.models.torch_weights.load_torchvision_weights": "needs torchvision's .pth (scripts/setup-weights)",
    "kerascnn.train.rendezvous.Watchdog": "needs a second process to check in",
    "kerascnn.train.distribute.session": "a fragment: the training goes where `...` stands",
    "kerascnn.rundir.locked": "needs a trained run in runs/quick",
    "kerascnn.export.exporter.export_run": "needs a trained run in runs/quick (and a minute per preset)",
    "kerascnn.rundir.Run": "needs a trained run in runs/quick (tests/train/test_rundir.py opens one)",
}


def pages():
    return sorted([*DOCS.glob("*.md"), ROOT / "README.md"])


def code_blocks(page: Path):
    """(language, code, reason it is not run or None) of each fenced block, directives (```{...}) left out."""
    text = page.read_text()
    blocks = []
    for match in FENCE.finditer(text):
        language, code = match[1].split(" ", 1)[0], match[2]
        if language.startswith("{"):
            continue
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        reason = NOT_RUN.fullmatch(before.strip())
        blocks.append((language, code, reason[1] if reason else None))
    return blocks


def test_readme_is_a_page():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 150, f"README.md has {len(lines)} lines: move the detail into docs/ or bench/RESULTS.md"
    assert not re.search(r"\b20\d\d-\d\d-\d\d\b", "\n".join(line for line in lines if not line.startswith("|"))), (
        "dated measurements belong in bench/RESULTS.md"
    )


def table(text: str, heading: str) -> list[list[str]]:
    """The rows (cells stripped) of the first Markdown table under `heading`."""
    section = text.split(heading + "\n", 1)[1].split("\n#", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in row.strip("|").split("|")] for row in rows if not set(row) <= set("|-")]


def test_readme_results_are_the_results_files():
    readme = table((ROOT / "README.md").read_text(), "## Results")
    results = table((ROOT / "bench" / "RESULTS.md").read_text(), "## Presets")
    assert readme[0] == ["preset", "parameters", "test accuracy", "time", "machine"]
    assert readme == results, "README.md's results table must be bench/RESULTS.md's Presets table, cell for cell"


def test_the_readmes_measured_percentages_are_the_results_files():
    """A figure quoted in the README's prose is typed in bench/RESULTS.md first (the table rows it comes from)."""
    prose = "\n".join(line for line in (ROOT / "README.md").read_text().splitlines() if not line.startswith("|"))
    quoted = re.findall(r"\b\d+\.\d+ %", prose)
    results = (ROOT / "bench" / "RESULTS.md").read_text()
    assert quoted, "the README quotes measured accuracies (the ImageNet recipe)"
    assert [q for q in quoted if f"| {q} |" not in results] == []


def test_every_code_block_runs_or_says_why_not():
    """Every fenced block is a python block that this test runs, or carries `<!-- not run: reason -->`."""
    runnable = {}
    for page in pages():
        for language, code, reason in code_blocks(page):
            if reason is None:
                assert language == "python", f"{page.name}: a {language or 'plain'} block needs <!-- not run: why -->"
                runnable.setdefault(page.name, []).append(code)
    assert sum(len(codes) for codes in runnable.values()) >= 7, runnable.keys()
    # each page in a namespace of its own, its blocks in order, in one process (kerascnn imported once)
    sources = {name: "\n".join(codes) for name, codes in runnable.items()}
    script = "".join(f"exec(compile({code!r}, {name!r}, 'exec'), {{}})\n" for name, code in sources.items())
    result = subprocess.run(
        [sys.executable, "-c", "import kerascnn\n" + script], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]


def test_every_docstring_example_is_run_or_listed():
    """A new `>>>` example lands in DOCTESTS (and runs) or in NOT_DOCTESTS with its reason."""
    found = set()
    for path in (ROOT / "kerascnn").rglob("*.py"):
        if ">>>" in path.read_text():
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            module = importlib.import_module(name)
            found |= {test.name for test in doctest.DocTestFinder().find(module, name) if test.examples}
    assert found == {*DOCTESTS, *NOT_DOCTESTS}


@pytest.mark.parametrize("name", DOCTESTS)
def test_docstring_examples(name):
    module_name, attribute = name.rsplit(".", 1)
    module = importlib.import_module(module_name)
    globs = {**vars(module), "kerascnn": importlib.import_module("kerascnn")}
    tests = doctest.DocTestFinder().find(getattr(module, attribute), name, module=module, globs=globs)
    examples = [test for test in tests if test.examples]
    assert examples, f"{name} has no >>> example"
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for test in examples:
        runner.run(test)
    assert runner.summarize(verbose=False).failed == 0


def test_the_site_builds_without_warnings(tmp_path):
    pytest.importorskip("sphinx", reason="the docs extra: pip install -e '.[dev,docs]'")
    pytest.importorskip("myst_nb", reason="the docs extra: pip install -e '.[dev,docs]'")
    command = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", str(DOCS), str(tmp_path)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=ROOT)
    warnings = [line for line in result.stderr.splitlines() if "WARNING" in line and "absl::InitializeLog" not in line]
    assert result.returncode == 0 and not warnings, "\n".join(warnings) or result.stderr[-3000:]
    for page in ("index", "export", "cli", "api", "results", "notebooks/02_train_and_inspect"):
        assert (tmp_path / f"{page}.html").is_file(), page
    cli = (tmp_path / "cli.html").read_text()
    assert "--quant" in cli and "--preset" in cli, "the CLI reference lost a parser"
    api = re.sub(r"<[^>]+>", "", (tmp_path / "api.html").read_text())
    assert "kerascnn.layers.Conv2D(filters, kernel_size" in api, "the layers' signatures are Layer.__new__'s"
