"""The CLI's run directory: resume from config.yaml, nothing left behind by a run that fails its checks, and
Keras's global settings restored after a run."""

import keras
import pytest
import yaml

from kerascnn import rundir
from kerascnn.train import resolve, train
from kerascnn.train.__main__ import main as cli

TINY = ["--model", "lenet5", "--limit", "192", "--batch-size", "64", "--no-tensorboard"]


def test_resume_takes_the_runs_own_settings(tmp_path, capsys):
    out = str(tmp_path / "run")
    assert cli([*TINY, "--epochs", "1", "--lr", "0.01", "--out", out]) == 0
    assert cli(["--out", out, "--resume", "--epochs", "2"]) == 0  # as README and --help show it
    assert "Resuming" in capsys.readouterr().out
    saved = yaml.safe_load((tmp_path / "run" / rundir.CONFIG).read_text())
    assert saved["lr"] == 0.01 and saved["model"] == "lenet5" and saved["epochs"] == 2
    assert cli(["--out", out, "--resume"]) == 0  # nothing left to do: still fine


@pytest.mark.parametrize("setup", ["missing", "empty"])
def test_resume_of_a_directory_without_a_run_says_so(tmp_path, capsys, setup):
    out = tmp_path / "run"
    if setup == "empty":
        out.mkdir()
    assert cli(["--out", str(out), "--resume"]) == 2
    err = capsys.readouterr().err
    assert ("does not exist" if setup == "missing" else "holds no run") in err
    assert out.exists() == (setup == "empty")


@pytest.mark.parametrize("args", [["--model", "resnet50"], ["--model-options", '{"nope": 1}'],
                                  ["--dataset", "no_such_dataset", "--limit", "8"]])
def test_a_run_that_fails_its_checks_leaves_nothing_behind(tmp_path, args, monkeypatch):
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))
    out = tmp_path / "run"
    assert cli([*TINY, *args, "--out", str(out)]) != 0
    assert not out.exists()


def test_mixed_precision_run_restores_the_float32_policy(tmp_path):
    metrics = train(resolve(dict(model="lenet5", limit=128, batch_size=64, epochs=1, tensorboard=False,
                                 mixed_precision=True, out=str(tmp_path / "run"))))
    assert 0 <= metrics["test_accuracy"] <= 1
    assert keras.mixed_precision.global_policy().name == "float32"
    model = keras.saving.load_model(tmp_path / "run" / rundir.LAST_MODEL)
    assert "mixed_bfloat16" in {layer.dtype_policy.name for layer in model.layers}
