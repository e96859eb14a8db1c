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


def staged_export(out: Path, text: str = "new") -> Path:
    """A staging folder beside `out` holding what an export of this run writes (the converters are not needed)."""
    from kerascnn.export import output

    staging = output.stage(out)
    (staging / "report.json").write_text(json.dumps({"text": text}))
    (staging / "vgg_float32.tflite").write_bytes(b"model")
    return staging


def test_a_symlinked_out_replaces_the_folder_it_names_and_keeps_the_link(tmp_path):
    """`--out latest` -> an earlier export: its folder is replaced, the link stays (was: "Is a directory", exit 2,
    after the whole export, and an empty .latest.old-XXXX left)."""
    from kerascnn.export import output

    earlier = tmp_path / "exports" / "v1"
    earlier.mkdir(parents=True)
    (earlier / "report.json").write_text("{}")
    link = tmp_path / "latest"
    link.symlink_to(earlier, target_is_directory=True)
    output.commit(staged_export(output.target(link)), link)
    assert link.is_symlink() and link.resolve() == earlier
    assert json.loads((link / "report.json").read_text()) == {"text": "new"}
    assert leftovers(tmp_path) == [] and leftovers(earlier.parent) == []


def test_overwrite_into_a_folder_that_does_not_exist_yet_creates_it(tmp_path):
    from kerascnn.export import output

    out = tmp_path / "new" / "out"
    output.check_out(out, tmp_path / "run" / "best.keras", "fingerprint", overwrite=True)
    output.commit(staged_export(out), out, overwrite=True)
    assert sorted(snapshot(out)) == ["report.json", "vgg_float32.tflite"] and leftovers(out.parent) == []


@pytest.mark.parametrize("umask, mode", [(0o022, 0o755), (0o002, 0o775)])
def test_export_folders_take_the_umask_mode_not_mkdtemps_0700(tmp_path, umask, mode):
    """A web server or another user must read the export: the staging folder becomes `out`."""
    import os

    from kerascnn.export import output

    old = os.umask(umask)
    try:
        out = tmp_path / "out"
        staging = staged_export(out)
        assert staging.stat().st_mode & 0o777 == mode
        output.commit(staging, out)
        assert out.stat().st_mode & 0o777 == mode and "report.json" in snapshot(out)
        output.commit(staged_export(out), out)  # replacing an earlier export: through the .old- folder
        assert out.stat().st_mode & 0o777 == mode and leftovers(tmp_path) == []
    finally:
        os.umask(old)


def test_staging_folders_of_killed_exports_are_removed_and_live_ones_kept(tmp_path):
    """A SIGKILLed export leaves its staging folder with a free lock: the next export beside it removes it. A live
    export's (its lock held), a recent one without a lock, and another folder's are kept."""
    import fcntl
    import os
    import subprocess

    from kerascnn.export import output

    out = tmp_path / "out"
    killed = staged_export(out)
    # the process that staged it dies holding the lock: here a child that locks it, then is SIGKILLed
    output._unlock(killed)  # this process lets go
    (killed / output.LOCK).touch()
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import fcntl, os, time; fd = os.open({str(killed / output.LOCK)!r}, os.O_RDWR); "
            "fcntl.flock(fd, fcntl.LOCK_EX); print(flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
    )
    child.stdout.readline()
    assert output.remove_stale_staging(out) == []  # locked by a live process
    child.kill()
    child.wait()
    live = tmp_path / ".out.partial-live"
    live.mkdir()
    held = os.open(live / output.LOCK, os.O_RDWR | os.O_CREAT)
    fcntl.flock(held, fcntl.LOCK_EX)
    recent = tmp_path / ".out.partial-recent"  # no lock (kerascnn before it): kept for a day
    recent.mkdir()
    ancient = tmp_path / ".out.partial-ancient"
    ancient.mkdir()
    os.utime(ancient, (0, 0))
    other = tmp_path / ".other.partial-x"
    other.mkdir()
    try:
        staging = output.stage(out)
        assert sorted(leftovers(tmp_path)) == sorted([staging.name, live.name, recent.name, other.name])
        output.discard(staging)
    finally:
        os.close(held)
    assert output.remove_stale_staging(out) == [live]  # its export ended (lock free)


def test_the_reports_mediapipe_sentence_is_whole_when_mediapipe_was_not_measured():
    """Issue 35: the report's MediaPipe sentence read "... or KERASCNN_EDGE_PYTHON and" and then the next section."""
    from kerascnn.export import report as reports

    note = reports._mediapipe_note({})
    assert note == f"MediaPipe: {reports.NOT_MEASURED}."
    assert note.count("(") == note.count(")") and note.endswith(").")
    assert reports.EDGE_PYTHON_VARIABLE in note and not note.rstrip(".)").endswith(" and")
