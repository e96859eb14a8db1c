"""The CLI's run directory: resume from config.yaml, nothing left behind by a run that fails its checks, and
Keras's global settings restored after a run."""

import json
import re
import shutil
import subprocess
import sys

import keras
import pytest
import yaml

from kerascnn import rundir
from kerascnn.train import config as train_config
from kerascnn.train import resolve, train, trainer
from kerascnn.train.__main__ import main as cli
from kerascnn.train.__main__ import parser
from kerascnn.train.checkpoint import ResumableCheckpoint
from tests.helpers import colour_shapes, copy_run, write_image_folder

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


@pytest.mark.parametrize(
    "args",
    [["--model", "resnet50"], ["--model-options", '{"nope": 1}'], ["--dataset", "no_such_dataset", "--limit", "8"]],
)
def test_a_run_that_fails_its_checks_leaves_nothing_behind(tmp_path, args, monkeypatch):
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))
    out = tmp_path / "run"
    assert cli([*TINY, *args, "--out", str(out)]) != 0
    assert not out.exists()


def test_mixed_precision_run_restores_the_float32_policy(tmp_path):
    metrics = train(
        resolve(
            dict(
                model="lenet5",
                limit=128,
                batch_size=64,
                epochs=1,
                tensorboard=False,
                mixed_precision=True,
                out=str(tmp_path / "run"),
            )
        )
    )
    assert 0 <= metrics["test_accuracy"] <= 1
    assert keras.mixed_precision.global_policy().name == "float32"
    model = keras.saving.load_model(tmp_path / "run" / rundir.LAST_MODEL)
    assert "mixed_bfloat16" in {layer.dtype_policy.name for layer in model.layers}


def _error(capsys, argv):
    code = cli(argv)
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err


@pytest.mark.parametrize(
    "text,message",
    [
        ("epochs: [1, 2\n", "is not valid YAML"),
        ("- 1\n- 2\n", "must hold a mapping"),
        ("just words\n", "must hold a mapping"),
        ('epochs: "ten"\n', "epochs must be an integer, not 'ten'"),
        ("lr: fast\n", "lr must be a number, not 'fast'"),
        ("model: 5\n", "model must be a string, not 5"),
        ("model_options: [1]\n", "model_options must be a mapping"),
    ],
)
def test_bad_config_files_are_one_line_errors(tmp_path, capsys, text, message):
    path = tmp_path / "my.yaml"
    path.write_text(text)
    err = _error(capsys, ["--config", str(path), "--out", str(tmp_path / "run")])
    assert message in err and str(path) in err


def test_bad_model_options_type(tmp_path, capsys):
    assert "model_options must be a mapping" in _error(
        capsys, ["--model-options", "[1, 2]", "--out", str(tmp_path / "run")]
    )


@pytest.mark.parametrize("where", ["file", "below a file"])
def test_out_that_is_a_file(tmp_path, capsys, where):
    (tmp_path / "taken").write_text("x")
    out = tmp_path / "taken" if where == "file" else tmp_path / "taken" / "run"
    assert "is a file, not a folder" in _error(capsys, [*TINY, "--out", str(out)])


@pytest.mark.parametrize(
    "content,message",
    [
        ("{not json", "is not readable JSON"),
        ("[1, 2]", "must be a JSON object"),
        ('{"epoch": 0}', "must be a JSON object"),
    ],
)
def test_damaged_state_json_is_named(tmp_path, capsys, content, message):
    out = tmp_path / "run"
    assert cli([*TINY, "--epochs", "1", "--out", str(out)]) == 0
    state = out / rundir.CHECKPOINT_DIR / rundir.STATE
    state.write_text(content)
    err = _error(capsys, ["--out", str(out), "--resume", "--epochs", "2"])
    assert message in err and str(state) in err


def test_truncated_checkpoint_is_reported_as_damaged(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli([*TINY, "--epochs", "1", "--out", str(out)]) == 0
    [checkpoint] = (out / rundir.CHECKPOINT_DIR).glob("epoch-*.keras")
    checkpoint.write_bytes(checkpoint.read_bytes()[:1000])
    err = _error(capsys, ["--out", str(out), "--resume", "--epochs", "2"])
    assert "is damaged" in err and checkpoint.name in err and "not found" not in err.lower()


def test_config_yaml_repeats_the_run_in_a_new_directory(tmp_path):
    """notebooks/02 and README: `--config <run>/config.yaml --out <new>` repeats a run."""
    first, again = tmp_path / "run", tmp_path / "again"
    assert cli([*TINY, "--epochs", "1", "--out", str(first)]) == 0
    assert "resume" not in yaml.safe_load((first / rundir.CONFIG).read_text())
    assert cli(["--config", str(first / rundir.CONFIG), "--out", str(again)]) == 0
    history = [yaml.safe_load((run / rundir.METRICS).read_text())["history"] for run in (first, again)]
    assert history[0] == history[1]


USERS_FILES = {"config.yaml": "my: settings\n", "labels.txt": "mine\n", "metrics.json": "{}", "notes.md": "keep me\n"}


def users_folder(path):
    path.mkdir()
    for name, text in USERS_FILES.items():
        (path / name).write_text(text)
    return path


def test_a_folder_of_the_users_own_files_is_refused_and_left_unchanged(tmp_path, capsys):
    out = users_folder(tmp_path / "mine")
    err = _error(capsys, [*TINY, "--epochs", "1", "--out", str(out)])
    assert "is not empty and not a kerascnn run" in err and "config.yaml, labels.txt, metrics.json, notes.md" in err
    assert "--overwrite" in err
    assert {p.name: p.read_text() for p in out.iterdir()} == USERS_FILES
    (out / "config.yaml").write_text("model: lenet5\nlimit: 64\n")  # a config a user wrote for --config
    assert "holds no kerascnn run" in _error(capsys, ["--out", str(out), "--resume"])
    assert (out / "labels.txt").read_text() == "mine\n" and not (out / rundir.CHECKPOINT_DIR).exists()


# issue 35's myproj/: a user's folder holding files with the names a run writes
MYPROJ = {
    "notes.txt": "keep me\n",
    "labels.txt": "mine\n",
    "config.yaml": "my: settings\n",
    "metrics.json": "{}",
    "export/firmware/main.cc": "int main() {}\n",
    "tb/mylog": "my log\n",
}


def files_of(folder):
    return {str(p.relative_to(folder)): p.read_text() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_overwrite_refuses_a_users_folder_naming_what_it_would_replace(tmp_path, capsys):
    out = tmp_path / "myproj"
    for name, text in MYPROJ.items():
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_text(text)
    err = _error(capsys, [*TINY, "--epochs", "1", "--out", str(out), "--overwrite"])
    assert "is not a kerascnn run" in err and "config.yaml, labels.txt, metrics.json, tb/, export/" in err
    assert files_of(out) == MYPROJ  # nothing deleted, nothing replaced, no lock file left


def test_overwrite_into_a_users_folder_without_run_files_keeps_them(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.md").write_text("keep me\n")
    assert cli([*TINY, "--epochs", "1", "--out", str(out), "--overwrite"]) == 0
    assert rundir.is_run(out) and (out / "notes.md").read_text() == "keep me\n"
    assert "test_accuracy" in yaml.safe_load((out / rundir.METRICS).read_text())
    assert "overwrite" not in yaml.safe_load((out / rundir.CONFIG).read_text())  # a repeat must ask again
    assert not (out / rundir.LOCK).exists()


def test_an_earlier_run_is_refused_and_overwrite_leaves_none_of_its_files(tmp_path, capsys, small_vgg_run):
    out = copy_run(small_vgg_run[0], tmp_path)  # 4 epochs
    state = out / rundir.CHECKPOINT_DIR / rundir.STATE
    before = state.read_text()
    err = _error(capsys, [*TINY, "--epochs", "1", "--out", str(out)])
    assert "already holds a kerascnn run" in err and "--resume" in err and "--overwrite" in err
    assert state.read_text() == before
    assert "give one of them" in _error(capsys, ["--out", str(out), "--resume", "--overwrite"])
    # what an earlier run may leave that the new one would not write again
    (out / rundir.CHECKPOINT_DIR / "epoch-0007.keras").write_bytes(b"stale")
    (out / rundir.TENSORBOARD_DIR).mkdir()
    (out / rundir.TENSORBOARD_DIR / "old.tfevents").write_bytes(b"stale")
    (out / rundir.EXPORT_DIR).mkdir()  # the default export of the old run's model
    (out / rundir.EXPORT_DIR / "model.tflite").write_bytes(b"stale")
    assert cli([*TINY, "--epochs", "1", "--lr", "0.01", "--out", str(out), "--overwrite"]) == 0
    assert sorted(p.name for p in (out / rundir.CHECKPOINT_DIR).iterdir()) == ["epoch-0000.keras", rundir.STATE]
    assert not (out / rundir.TENSORBOARD_DIR).exists()  # --no-tensorboard: the old curves are gone, not mixed in
    assert not (out / rundir.EXPORT_DIR).exists()  # the old model's export is not taken for the new one's
    assert len(yaml.safe_load(state.read_text())["history"]) == 1  # a new run, not epochs 1-4 of the old one
    assert yaml.safe_load((out / rundir.CONFIG).read_text())["lr"] == 0.01


def test_is_run_tells_a_run_from_a_users_config_yaml(tmp_path):
    users = users_folder(tmp_path / "mine")
    assert not rundir.is_run(users) and not rundir.is_run(tmp_path / "missing")
    (users / rundir.CONFIG).write_text(f"{rundir.RUN_MARKER}\nmodel: vgg\n")
    assert rundir.is_run(users)


# a process that holds the run directory's lock until it is killed
HOLD_LOCK = """import sys, time
from kerascnn import rundir
with rundir.locked(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(300)
"""


def test_a_second_training_into_the_same_out_is_refused_naming_the_first(tmp_path, capsys):
    out = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "locked\n"
        for again in (["--seed", "5"], ["--overwrite"]):
            err = _error(capsys, [*TINY, "--epochs", "1", "--out", str(out), *again])
            assert f"being written by another training (pid {holder.pid})" in err
        assert [p.name for p in out.iterdir()] == [rundir.LOCK]  # the refused runs wrote nothing
    finally:
        holder.kill()  # as kill -9: the kernel releases its lock, its lock file stays
        holder.wait()
    assert cli([*TINY, "--epochs", "1", "--out", str(out)]) == 0
    assert rundir.is_run(out) and not (out / rundir.LOCK).exists()


@pytest.mark.parametrize("inside", ["", "class0"])
def test_a_test_dir_that_is_or_lies_in_the_data_dir_is_refused(tmp_path, capsys, inside):
    data = tmp_path / "data"
    err = _error(capsys, ["--data-dir", str(data), "--test-dir", str(data / inside), "--out", str(tmp_path / "run")])
    assert "the test images would be training images too" in err
    assert not (tmp_path / "run").exists()


def test_the_run_stores_its_data_folder_absolute_and_resumes_from_anywhere(tmp_path, monkeypatch, capsys):
    write_image_folder(tmp_path / "start" / "photos", *colour_shapes(32, size=(28, 28)))
    monkeypatch.chdir(tmp_path / "start")
    quick = ["--batch-size", "16", "--no-tensorboard", "--model", "lenet5", "--augment-padding", "0"]
    assert cli([*quick, "--data-dir", "photos", "--epochs", "1", "--out", "run"]) == 0
    run, photos = tmp_path / "start" / "run", str(tmp_path / "start" / "photos")
    assert yaml.safe_load((run / rundir.CONFIG).read_text())["data_dir"] == photos
    assert json.loads((run / rundir.DATASET).read_text())["spec"]["data_dir"] == photos
    monkeypatch.chdir(tmp_path)  # elsewhere: export and --resume open the run's data by its absolute path
    assert cli(["--out", str(run), "--resume", "--epochs", "2"]) == 0
    shutil.move(photos, tmp_path / "moved")
    assert f"Image folder {photos} does not exist" in _error(capsys, ["--out", str(run), "--resume", "--epochs", "3"])


def test_resume_with_fewer_epochs_than_done_is_refused(tmp_path, capsys, small_vgg_run):
    out = copy_run(small_vgg_run[0], tmp_path)  # 4 epochs
    before = (out / rundir.CONFIG).read_text()
    err = _error(capsys, ["--out", str(out), "--resume", "--epochs", "2"])
    assert "has trained 4 epochs already" in err and "--epochs 4 or more" in err
    assert (out / rundir.CONFIG).read_text() == before


def test_ctrl_c_says_what_was_kept_and_how_to_continue(tmp_path, capsys, monkeypatch):
    save = ResumableCheckpoint.on_epoch_end

    def save_then_ctrl_c(self, epoch, logs=None):
        save(self, epoch, logs)
        raise KeyboardInterrupt

    monkeypatch.setattr(ResumableCheckpoint, "on_epoch_end", save_then_ctrl_c)
    out = tmp_path / "run"
    assert cli([*TINY, "--epochs", "2", "--out", str(out)]) == 130
    [line] = capsys.readouterr().err.strip().splitlines()
    assert f"checkpoint of epoch 1 is kept in {out / rundir.CHECKPOINT_DIR}" in line
    assert f"python -m kerascnn.train --out {out} --resume" in line
    assert not (out / rundir.LOCK).exists()  # the lock is released

    def ctrl_c(config):
        raise KeyboardInterrupt

    monkeypatch.setattr(trainer, "train", ctrl_c)
    assert cli([*TINY, "--out", str(tmp_path / "early")]) == 130
    assert "before the first checkpoint" in capsys.readouterr().err


def test_resume_help_names_every_flag_a_resume_may_change_and_the_examples_have_no_runs_of_blanks():
    [resume] = [action for action in parser()._actions if action.dest == "resume"]
    for name in train_config.RESUME_MAY_CHANGE - {"out", "preset", "resume", "overwrite"}:
        assert train_config.flag(name) in resume.help or name in ("coordinator", "process_id", "startup_timeout")
    assert {"--tta-flip", "--checkpoint-every", "--compile-cache"} <= set(re.findall(r"--[a-z-]+", resume.help))
    assert not re.search(r"\S {3,}", parser().description)
