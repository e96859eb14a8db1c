"""Data-parallel training across processes (JAX backend, gloo on the CPU): two workers on 127.0.0.1."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from kerascnn.train import distribute

ROOT = Path(__file__).resolve().parents[2]


def test_cluster_from_flags_then_environment():
    env = {
        distribute.ENV_COORDINATOR: "10.0.0.1:1234",
        distribute.ENV_NUM_PROCESSES: "4",
        distribute.ENV_PROCESS_ID: "3",
    }
    assert distribute.cluster_from(environ=env) == distribute.Cluster("10.0.0.1:1234", 4, 3)
    assert distribute.cluster_from(process_id=0, environ=env).is_chief
    assert distribute.cluster_from(environ={}) == distribute.Cluster(None, 1, 0)
    assert not distribute.cluster_from(environ={}).multi_process


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"num_processes": 2, "process_id": 0}, "needs --coordinator HOST:PORT"),
        ({"coordinator": "a:1", "num_processes": 2, "process_id": 2}, r"--process-id must be in 0\.\.1"),
        ({"coordinator": "nohost", "num_processes": 2, "process_id": 0}, "HOST:PORT"),
        ({"num_processes": 0}, "must be >= 1"),
    ],
)
def test_bad_cluster_settings_are_named(kwargs, match):
    with pytest.raises(distribute.DistributionError, match=match):
        distribute.cluster_from(environ={}, **kwargs)


def test_several_processes_on_tensorflow_say_keras_supports_one_machine(monkeypatch):
    monkeypatch.setattr(distribute.keras.backend, "backend", lambda: "tensorflow")
    with pytest.raises(distribute.DistributionError, match="needs the JAX backend.*only one machine on TensorFlow"):
        distribute.initialize(distribute.Cluster("127.0.0.1:1", 2, 0))


WORKER = """
import hashlib, json, sys
import numpy as np
import keras
from kerascnn import models
from kerascnn.data import stream
from kerascnn.train import distribute

folder, out = sys.argv[1], sys.argv[2]
cluster = distribute.cluster_from()
distribute.initialize(cluster)
distribute.data_parallel(cluster)
keras.utils.set_random_seed(0)
data = stream.open_image_folder(folder, validation_fraction=0.0, test_fraction=0.0, stats_images=None)
read = [hashlib.sha1(image.tobytes()).hexdigest() for image, _ in
        data.images("train", cluster.num_processes, cluster.process_id).as_numpy_iterator()]
model = models.create("vgg", data.input_shape, len(data.labels), widths=(8, 16))
model.compile("adam", "categorical_crossentropy")
np.savez(f"{out}/initial{cluster.process_id}.npz", *model.get_weights())
model.fit(data.batches("train", 4, shuffle=True, seed=0, num_shards=cluster.num_processes,
                       shard_index=cluster.process_id), epochs=2, verbose=0)
np.savez(f"{out}/weights{cluster.process_id}.npz", *model.get_weights())
json.dump(read, open(f"{out}/read{cluster.process_id}.json", "w"))
if cluster.is_chief:
    with open(f"{out}/run.txt", "a") as f:
        f.write("written by the chief\\n")
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# what every worker process gets: the JAX backend on the CPU, this checkout's kerascnn
WORKER_ENV = {
    **os.environ,
    "KERAS_BACKEND": "jax",
    "JAX_PLATFORMS": "cpu",
    "PYTHONPATH": str(ROOT),
    "TF_CPP_MIN_LOG_LEVEL": "2",
}


def start_worker(args: list[str], env: dict, cwd=None) -> subprocess.Popen:
    """`python ARGS` in a process of its own, stdout and stderr together."""
    return subprocess.Popen(
        [sys.executable, *args], env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def run_workers(workers: list[subprocess.Popen]) -> list[str]:
    """Waits for the workers (4 minutes at most; all are killed after) and returns their output; each must exit 0."""
    try:
        logs = [worker.communicate(timeout=240)[0] for worker in workers]
    finally:
        for worker in workers:
            worker.kill()
    assert [w.returncode for w in workers] == [0, 0], logs
    return logs


def test_two_workers_read_different_halves_and_end_with_identical_weights(tmp_path):
    from tests.data.test_stream import write_images

    write_images(tmp_path / "images", per_class=8, size=(16, 16))  # 24 images: 12 per worker, 3 steps of 4
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    port = free_port()
    workers = []
    for process_id in range(2):
        env = {
            **WORKER_ENV,
            distribute.ENV_COORDINATOR: f"127.0.0.1:{port}",
            distribute.ENV_NUM_PROCESSES: "2",
            distribute.ENV_PROCESS_ID: str(process_id),
        }
        workers.append(start_worker([str(script), str(tmp_path / "images"), str(tmp_path)], env))
    run_workers(workers)
    reads = [json.loads((tmp_path / f"read{i}.json").read_text()) for i in range(2)]
    assert len(reads[0]) == len(reads[1]) == 12 and not set(reads[0]) & set(reads[1])
    weights = [np.load(tmp_path / f"weights{i}.npz") for i in range(2)]
    for name in weights[0].files:
        np.testing.assert_array_equal(weights[0][name], weights[1][name])
    initial = np.load(tmp_path / "initial0.npz")
    assert any(not np.allclose(initial[name], weights[0][name]) for name in initial.files)  # it trained
    assert (tmp_path / "run.txt").read_text() == "written by the chief\n"


def test_cli_on_two_processes_writes_one_run_directory(tmp_path):
    from tests.data.test_stream import write_images

    write_images(tmp_path / "images", classes=("a", "b"), per_class=12, size=(16, 16))
    port = free_port()
    workers = []
    for process_id in range(2):
        args = [
            "--data-dir",
            str(tmp_path / "images"),
            "--model",
            "vgg",
            "--model-options",
            '{"widths": [8]}',
            "--epochs",
            "1",
            "--batch-size",
            "4",
            "--no-tensorboard",
            "--out",
            str(tmp_path / f"run{process_id}"),
            "--coordinator",
            f"127.0.0.1:{port}",
            "--num-processes",
            "2",
            "--process-id",
            str(process_id),
        ]
        workers.append(start_worker(["-m", "kerascnn.train", *args], WORKER_ENV, cwd=tmp_path))
    logs = run_workers(workers)
    for process_id, log in enumerate(logs):
        assert f"process {process_id} of 2 reads 1/2 of each split" in log and "input: stream" in log
    metrics = json.loads((tmp_path / "run0" / "metrics.json").read_text())
    assert metrics["processes"] == 2 and metrics["input_path"] == "stream" and len(metrics["history"]) == 1
    assert (tmp_path / "run0" / "last.keras").exists()
    assert not (tmp_path / "run1").exists()  # process 1 wrote nothing
