"""`Run` (kerascnn/rundir.py), the one owner of the run directory: a run written by the code before it still opens
(tests/fixtures/run_v1: lenet5, `--limit 64 --epochs 1 --image-size 28 28`; its checkpoint's epoch-0000.keras and
last.keras left out for size), one rule for the run's model, and the start checks."""

import shutil
from pathlib import Path

import pytest

from kerascnn import rundir
from kerascnn.rundir import CheckpointError, Run, RunDirError
from kerascnn.train import TrainConfig, resolve

RUN_V1 = Path(__file__).resolve().parents[1] / "fixtures" / "run_v1"


def test_a_run_written_before_run_existed_opens():
    run = Run(RUN_V1, resolve)
    config = run.config()
    assert isinstance(config, TrainConfig) and config.model == "lenet5" and config.limit == 64
    assert run.is_run() and run.settings()["image_size"] == [28, 28]
    assert run.dataset()["labels"][:2] == ["T-shirt/top", "Trouser"] and run.dataset()["input_shape"] == [28, 28, 1]
    assert run.model_file() == RUN_V1 / rundir.BEST_MODEL
    assert run.metrics()["model"] == "lenet5" and len(run.fingerprint()) == 64
    with pytest.raises(CheckpointError, match="epoch-0000.keras, which is missing"):
        run.state()  # the fixture keeps state.json, not the 800 KB checkpoint it names


def test_its_model_loads_through_the_run_directory():
    import kerascnn

    model = kerascnn.load_model(RUN_V1)
    assert model.name == "lenet5" and tuple(model.input_shape[1:]) == (28, 28, 1)
    assert model.output_shape[-1] == len(Run(RUN_V1).dataset()["labels"])


def test_its_model_exports(tmp_path):
    """The export opens the old run through `Run` (typed config, dataset record, model file) and converts it."""
    pytest.importorskip("tensorflow")
    from kerascnn.export import export_run

    report = export_run(
        RUN_V1, ["float32"], calibration=8, out=tmp_path / "out", limit=32, latency_rounds=1, mediapipe=False,
        tflm_images=0,
    )  # fmt: skip
    assert report["model"] == "lenet5" and report["source"] == str(RUN_V1 / rundir.BEST_MODEL)
    assert report["run_fingerprint"] == Run(RUN_V1).fingerprint() and (tmp_path / "out" / "report.json").exists()


def test_the_run_model_is_best_keras_else_last_keras(tmp_path):
    run = Run(tmp_path)
    assert run.model_file() is None
    (tmp_path / rundir.LAST_MODEL).write_bytes(b"last")
    assert run.model_file() == tmp_path / rundir.LAST_MODEL
    (tmp_path / rundir.BEST_MODEL).write_bytes(b"best")
    assert run.model_file() == tmp_path / rundir.BEST_MODEL


def test_start_checks(tmp_path):
    """New, resumed and overwritten runs are checked in one place, with the messages the CLI shows."""
    out = tmp_path / "run"
    shutil.copytree(RUN_V1, out)
    run = Run(out, resolve)
    values = dict(run.settings(), out=str(out))
    with pytest.raises(RunDirError, match="already holds a kerascnn run"):
        run.check_start(resolve(values))
    with pytest.raises(RunDirError, match="give one of them, not both"):
        run.check_start(resolve(dict(values, resume=True, overwrite=True)))
    assert run.check_start(resolve(dict(values, overwrite=True))) is None
    with pytest.raises(RunDirError, match="does not exist"):
        Run(tmp_path / "missing").check_resumable()
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunDirError, match="holds no run"):
        Run(tmp_path / "empty").check_resumable()
    run.check_resumable()


def test_the_resume_check_names_changed_settings(tmp_path):
    out = tmp_path / "run"
    shutil.copytree(RUN_V1, out)
    (out / rundir.CHECKPOINT_DIR / "epoch-0000.keras").write_bytes(b"")  # state.json names it
    run = Run(out, resolve)
    values = dict(run.settings(), out=str(out), resume=True)
    assert run.check_start(resolve(values), {"out", "resume"})["epoch"] == 0
    with pytest.raises(RunDirError, match=r"these differ from .*config.yaml: lr: 0.003 -> 0.1"):
        run.check_start(resolve(dict(values, lr=0.1)), {"out", "resume"})
    run.write_state(dict(run.state(), epoch=3))
    with pytest.raises(RunDirError, match="has trained 4 epochs already"):
        run.check_start(resolve(dict(values, epochs=2)), {"out", "resume", "epochs"})


def test_settings_that_are_not_a_mapping_are_named(tmp_path):
    (tmp_path / rundir.CONFIG).write_text(f"{rundir.RUN_MARKER}\n- 1\n")
    with pytest.raises(ValueError, match="must hold a mapping of settings"):
        Run(tmp_path).settings()
    with pytest.raises(TypeError, match="parse_config"):
        Run(tmp_path).config()
