"""The export folder (kerascnn/export/output.py): a user's files are never overwritten without --overwrite, a failed
export leaves the earlier one byte for byte and no staging folder, and the default --out is the run's own folder."""

import json
import shutil
import sys
from pathlib import Path

import keras
import pytest

from kerascnn.export import export_run
from kerascnn.export import writer as writers
from kerascnn.export.__main__ import main as export_main
from kerascnn.export.output import OutputFolderError
from tests.export.test_export import ROOT
from tests.helpers import copy_run

if keras.backend.backend() != "tensorflow":
    pytest.skip("export runs on the TensorFlow backend", allow_module_level=True)

QUICK = dict(limit=200, latency_rounds=1, mediapipe=False)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


def leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if ".partial-" in p.name or ".old-" in p.name)


@pytest.fixture
def run_copy(small_vgg_run, tmp_path):
    return copy_run(small_vgg_run[0], tmp_path)


def test_a_folder_with_a_users_files_is_refused_naming_them(run_copy, tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "report.md").write_text("my own report")
    (out / "vgg_float32.json").write_text('{"mine": true}')
    before = snapshot(out)
    assert export_main([str(run_copy), "--quant", "float32", "--out", str(out), "--no-mediapipe"]) == 2
    err = capsys.readouterr().err
    assert "report.md, vgg_float32.json" in err and "--overwrite" in err and "Traceback" not in err
    assert snapshot(out) == before and leftovers(tmp_path) == []
    # another run's export counts as foreign too: its report.json names another run
    other = tmp_path / "other"
    other.mkdir()
    (other / "report.json").write_text(json.dumps({"source": "/elsewhere/best.keras", "variants": {}}))
    with pytest.raises(OutputFolderError, match="another run's export or other files .*report.json"):
        export_run(run_copy, ["float32"], out=other, **QUICK)


def test_overwrite_replaces_same_named_files_and_keeps_the_others(run_copy, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "report.md").write_text("my own report")
    (out / "notes.txt").write_text("keep me")
    args = [str(run_copy), "--quant", "float32", "--out", str(out), "--limit", "200", "--no-mediapipe"]
    assert export_main([*args, "--overwrite"]) == 0
    assert (out / "notes.txt").read_text() == "keep me"
    assert (out / "report.md").read_text().startswith("# Quantization report")
    assert {"vgg_float32.tflite", "vgg_float32.json", "report.json"} <= set(snapshot(out))
    assert leftovers(tmp_path) == []


def test_default_out_is_the_runs_own_folder_and_a_reexport_replaces_it(run_copy, tmp_path):
    report = export_run(run_copy, ["float32"], **QUICK)
    export = run_copy / "export"
    assert json.loads((export / "report.json").read_text())["source"] == report["source"]
    assert not (ROOT / "export" / run_copy.name).exists()  # nothing written into the source tree
    stale = export / "vgg_float32.json"
    stale.write_text("{}")  # the re-export of the same run replaces the whole folder
    export_run(run_copy, ["float32"], **QUICK)
    assert json.loads(stale.read_text())["labels"][0] == "T-shirt/top"
    assert sorted(p.name for p in run_copy.iterdir() if p.name.startswith(".")) == []  # no staging, no old copy


def test_a_failure_half_way_leaves_the_earlier_export_byte_identical(exported, run_copy, tmp_path, monkeypatch):
    """int8 (another calibration size than the earlier export's: other bytes) is written, then float32 fails."""
    root, _ = exported
    out = tmp_path / "out"
    shutil.copytree(root / "out", out)
    before = snapshot(out)
    real_write = writers.VariantWriter.write

    def fail_on_float32(self, variant, tflite_model):
        if variant.quant == "float32":
            raise ValueError("injected failure")
        return real_write(self, variant, tflite_model)

    monkeypatch.setattr(writers.VariantWriter, "write", fail_on_float32)
    with pytest.raises(ValueError, match="injected failure"):
        export_run(run_copy, ["int8", "float32"], calibration=20, out=out, **QUICK)
    assert snapshot(out) == before
    assert leftovers(tmp_path) == []
    monkeypatch.setattr(writers.VariantWriter, "write", real_write)
    export_run(run_copy, ["int8"], calibration=20, out=out, **QUICK)  # an export of this run: replaced whole
    after = snapshot(out)
    assert set(after) == {"vgg_int8.tflite", "vgg_int8.json", "report.json", "report.md"}
    assert after["vgg_int8.tflite"] != before["vgg_int8.tflite"] and leftovers(tmp_path) == []


FAKE_CHECK = """import json, sys
models = [a for a in sys.argv[1:] if a.endswith(".tflite")]
row = {"mediapipe": {"supported": True, "accuracy": 12.5, "ms_per_image": 0.5}, "ai_edge_litert": {"accuracy": 1.0}}
print(json.dumps({"mediapipe": "fake 0.1", "results": [row for _ in models]}))
"""


def test_the_edge_python_and_the_mediapipe_check_come_from_flags_or_the_environment(run_copy, tmp_path, monkeypatch):
    """A wheel ships no .venv-edge: the edge Python (and a MediaPipe-check script) are given by flag or variable,
    the repository checkout's .venv-edge, running the installed `python -m kerascnn_edge.check_mediapipe`, is only
    the default."""
    from kerascnn.export import report as reports

    script = tmp_path / "fake_check.py"
    script.write_text(FAKE_CHECK)
    monkeypatch.delenv(reports.EDGE_PYTHON_VARIABLE, raising=False)
    monkeypatch.delenv(reports.MEDIAPIPE_CHECK_VARIABLE, raising=False)
    assert reports.edge_tools() == (ROOT / ".venv-edge" / "bin" / "python", None)
    monkeypatch.setenv(reports.EDGE_PYTHON_VARIABLE, "/env/python")
    monkeypatch.setenv(reports.MEDIAPIPE_CHECK_VARIABLE, str(script))
    assert reports.edge_tools() == (Path("/env/python"), script)
    assert reports.edge_tools("/flag/python", "/flag/check.py") == (Path("/flag/python"), Path("/flag/check.py"))
    args = [str(run_copy), "--quant", "float32", "--out", str(tmp_path / "out"), "--limit", "100"]
    assert export_main([*args, "--edge-python", sys.executable]) == 0
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["mediapipe"] == "mediapipe fake 0.1"  # the flag's Python ran the variable's script
    assert report["variants"]["float32"]["mediapipe"]["accuracy"] == 12.5
    monkeypatch.delenv(reports.MEDIAPIPE_CHECK_VARIABLE)
    missing = {"variants": {}}
    reports.add_mediapipe(missing, tmp_path, None, None, python=sys.executable, script=tmp_path / "none.py")
    assert missing["mediapipe"] == reports.NOT_MEASURED and "--edge-python" in reports.NOT_MEASURED
