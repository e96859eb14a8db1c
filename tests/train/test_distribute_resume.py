"""A 2-process run (JAX, gloo on 127.0.0.1) whose worker is killed resumes from the chief's last checkpoint
and ends with the weights of the same run left alone."""

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

import kerascnn
from kerascnn import rundir
from kerascnn.train import rendezvous
from tests.train.test_distribute import ROOT, listen_addresses

EPOCHS = 6


def launch(
    images: Path, out: Path, port: int, process_id: int, resume: bool = False, own_out: bool = False
) -> subprocess.Popen:
    """One worker of `python -m kerascnn.train` on 2 processes; process 1 gets its cluster settings from
    Keras's environment variables (as a cluster scheduler would set them), process 0 from flags. `own_out`:
    process 1 is given `<out>-1` as its --out (a folder of its own, where it must write nothing)."""
    scratch = out.parent / f"tmp-{out.name}"
    scratch.mkdir(exist_ok=True)
    env = {
        **os.environ,
        "KERAS_BACKEND": "jax",
        "JAX_PLATFORMS": "cpu",
        "PYTHONPATH": str(ROOT),
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "TMPDIR": str(scratch),  # process 1's scratch folder goes here, where a SIGKILL leaves it
    }
    cluster = ["--coordinator", f"127.0.0.1:{port}", "--num-processes", "2", "--process-id", "0"]
    if process_id:
        env.update(
            KERAS_DISTRIBUTION_JOB_ADDRESSES=f"127.0.0.1:{port}",
            KERAS_DISTRIBUTION_NUM_PROCESSES="2",
            KERAS_DISTRIBUTION_PROCESS_ID="1",
        )
        cluster = []
    if resume:  # the run's own settings come from its config.yaml
        args = ["--out", str(out), "--resume"]
    else:
        args = [
            *("--data-dir", str(images), "--model", "vgg", "--model-options", '{"widths": [8]}'),
            *("--epochs", str(EPOCHS), "--batch-size", "4", "--no-tensorboard", "--out", str(out)),
        ]
    if own_out and process_id:
        args[args.index("--out") + 1] = f"{out}-1"
    log = out.parent / f"{out.name}-{process_id}{'-resume' if resume else ''}.log"
    with open(log, "w") as stdout:  # a file, not a pipe nobody reads while the test waits
        worker = subprocess.Popen(
            [sys.executable, "-m", "kerascnn.train", *args, *cluster],
            env=env,
            cwd=out.parent,
            stdout=stdout,
            stderr=subprocess.STDOUT,
        )
    worker.log = log
    return worker


def output(worker: subprocess.Popen) -> str:
    return worker.log.read_text()


def free_ports(count: int) -> list[int]:
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]


def finish(workers: list[subprocess.Popen], timeout: float = 300) -> list[str]:
    deadline = time.perf_counter() + timeout
    try:
        for worker in workers:
            worker.wait(timeout=max(1.0, deadline - time.perf_counter()))
    except subprocess.TimeoutExpired:
        pass  # killed below; the assertion shows both logs
    finally:
        for worker in workers:
            worker.kill()
    logs = [output(worker) for worker in workers]
    assert [w.returncode for w in workers] == [0, 0], logs
    return logs


def weights(path: Path) -> list[np.ndarray]:
    return [np.asarray(w) for w in kerascnn.load_model(path).get_weights()]


def test_resume_takes_coordinator_and_process_id_from_this_launch_not_from_config_yaml(tmp_path):
    from kerascnn.train.__main__ import resume_values
    from kerascnn.train.config import resolve, to_yaml

    out = tmp_path / "run"
    out.mkdir()
    chief = resolve({"model": "vgg", "out": str(out), "coordinator": "10.0.0.1:1", "num_processes": 2, "process_id": 0})
    (out / rundir.CONFIG).write_text(f"{rundir.RUN_MARKER}\n{to_yaml(chief)}")
    values = resume_values({"out": str(out)})  # process 1 with its id (and the new address) in the environment
    assert "process_id" not in values and "coordinator" not in values and values["num_processes"] == 2
    assert resume_values({"out": str(out), "process_id": 1})["process_id"] == 1


def test_killed_worker_then_resume_of_both_processes_ends_as_an_uninterrupted_run(tmp_path):
    from tests.data.test_stream import write_images

    images = tmp_path / "images"
    write_images(images, classes=("a", "b"), per_class=12, size=(16, 16))
    out = tmp_path / "run"  # one --out for both processes: storage every machine sees

    started = time.perf_counter()
    straight = tmp_path / "straight"  # the same run left alone, alongside
    ports = free_ports(3)  # all bound at once, so no two are the same
    references = [launch(images, straight, ports[0], i, own_out=True) for i in range(2)]
    try:
        resume_and_compare(images, out, straight, ports, references, started)
    finally:
        for worker in references:
            worker.kill()


def resume_and_compare(images, out, straight, ports, references, started):
    """`references`: the uninterrupted run on ports[0]; the run killed and resumed uses ports[1] and ports[2]."""
    state_file = out / rundir.CHECKPOINT_DIR / rundir.STATE
    listening = set()
    while not listening:  # the reference's chief is up before the run to kill starts
        assert all(w.poll() is None for w in references), [output(w) for w in references]
        assert time.perf_counter() - started < 300, "the reference run listens nowhere after 300 s"
        listening |= listen_addresses(ports[0])
        time.sleep(0.05)
    workers = [launch(images, out, ports[1], i) for i in range(2)]
    try:
        while not state_file.exists():  # the first epoch's checkpoint
            listening |= listen_addresses(ports[0])  # the reference's check-in listener, then JAX's service
            assert all(w.poll() is None for w in workers), [output(w) for w in workers]
            assert time.perf_counter() - started < 300, "no checkpoint after 300 s"
            time.sleep(0.02)
        workers[1].send_signal(signal.SIGKILL)
        workers[1].wait()
        killed = time.perf_counter()
        # it used to print gloo's "Connection reset by peer", hang about 80 s and abort (134) with a C++ stack
        with contextlib.suppress(subprocess.TimeoutExpired):
            workers[0].wait(timeout=30)
        chief = f"the chief stopped {time.perf_counter() - killed:.1f} s after the kill"
    finally:
        for worker in workers:
            worker.kill()
            worker.wait()
    chief_log = output(workers[0])
    assert workers[0].returncode == rendezvous.LOST_EXIT, chief_log
    lost = "error: Process 1 of 2 ended before the run finished (killed, or stopped by an error: see its output)"
    assert lost in chief_log and chief_log.count("\n", chief_log.index(lost)) == 1, chief_log  # its last line
    assert "start every process again with the same command and --resume" in chief_log
    scratch = out.parent / f"tmp-{out.name}"
    assert len(list(scratch.glob("kerascnn-process1-*"))) == 1  # the killed worker's, left behind
    killed = time.perf_counter()
    state = json.loads(state_file.read_text())
    done = state["epoch"] + 1
    assert 1 <= done < EPOCHS and not (out / rundir.METRICS).exists(), chief_log  # it did stop part-way

    logs = finish([launch(images, out, ports[2], i, resume=True) for i in range(2)])
    resumed = time.perf_counter()
    assert len(list(scratch.glob("kerascnn-process1-*"))) == 1  # the resumed worker deleted its own
    for log in logs:
        assert f"Resuming {out} at epoch {done + 1} (epochs 1-{done} are done)" in log, log
    assert "process 1 of 2" in logs[1]
    metrics = json.loads((out / rundir.METRICS).read_text())
    assert [h["epoch"] for h in metrics["history"]] == list(range(EPOCHS)), metrics["history"]
    assert metrics["epochs"] == EPOCHS and metrics["processes"] == 2

    reference_logs = finish(references)
    check_the_uninterrupted_cli_run(straight, reference_logs, listening)
    for a, b in zip(weights(straight / rundir.LAST_MODEL), weights(out / rundir.LAST_MODEL), strict=True):
        np.testing.assert_array_equal(a, b)
    print(
        f"killed after epoch {done} ({chief}): run+kill {killed - started:.1f} s, resume and the uninterrupted "
        f"run's end {resumed - killed:.1f} s"
    )


def check_the_uninterrupted_cli_run(run: Path, logs: list[str], listening: set[str]) -> None:
    """The CLI on two processes writes one run directory: the chief's. Process 0 listens on the address given, not on
    every interface: the check-in on 127.0.0.1, JAX's gRPC service on an IPv6 socket bound to the IPv4-mapped
    127.0.0.1 (bound to every interface, it would show "::")."""
    assert listening and listening <= {"127.0.0.1", "::ffff:127.0.0.1"}, listening
    for process_id, log in enumerate(logs):
        assert f"process {process_id} of 2 reads 1/2 of each split" in log and "input: stream" in log, log
    metrics = json.loads((run / rundir.METRICS).read_text())
    assert metrics["processes"] == 2 and metrics["input_path"] == "stream" and len(metrics["history"]) == EPOCHS
    assert (run / rundir.LAST_MODEL).exists()
    assert not Path(f"{run}-1").exists()  # process 1 wrote nothing into its own --out
