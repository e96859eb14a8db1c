"""Data-parallel training across processes (JAX backend, gloo on the CPU): two workers on 127.0.0.1."""

import ipaddress
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from kerascnn.train import distribute, rendezvous

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
from kerascnn.train import distribute, rendezvous

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


def listen_addresses(port: int) -> set[str]:
    """The local addresses with a TCP socket listening on `port` (from /proc/net/tcp and tcp6)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state != "0A" or int(hex_port, 16) != port:  # 0A: LISTEN
                continue
            raw = bytes.fromhex(address)
            # each 32-bit word is in the host's (little-endian) order
            raw = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
            found.add(str(ipaddress.ip_address(raw)).replace("::ffff:7f00:1", "::ffff:127.0.0.1"))
    return found


def serve_in_thread(*args) -> tuple[threading.Thread, list]:
    """`rendezvous.serve(*args)` in a thread; the list gets the error it raised (or None)."""
    outcome = []

    def run():
        try:
            rendezvous.serve(*args)
            outcome.append(None)
        except rendezvous.RendezvousError as error:
            outcome.append(str(error))

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


SETTINGS = {"--seed": 0, "--epochs": 2, "--model": "vgg", "--model-options": {"widths": [8, 16]}}


def test_rendezvous_lets_equal_settings_through_and_binds_the_given_address():
    port = free_port()
    thread, outcome = serve_in_thread(f"127.0.0.1:{port}", 3, SETTINGS, 20)
    errors = []

    def check_in(process_id):
        try:
            rendezvous.check_in(f"127.0.0.1:{port}", process_id, 3, SETTINGS, 20)
        except rendezvous.RendezvousError as error:
            errors.append(error)

    time.sleep(0.3)
    listening = listen_addresses(port)  # process 0 waits for the others
    checkers = [threading.Thread(target=check_in, args=(i,)) for i in (1, 2)]
    for checker in checkers:
        checker.start()
    for checker in checkers:
        checker.join()
    thread.join()
    assert errors == [], errors
    assert outcome == [None] and listening == {"127.0.0.1"}


@pytest.mark.parametrize(
    "changes,named",
    [
        ({"--seed": 1}, "--seed 1 (process 0: 0)"),
        ({"--epochs": 3, "--model": "resnet"}, '--epochs 3 (process 0: 2); --model "resnet" (process 0: "vgg")'),
        ({"--model-options": {"widths": [8]}}, '--model-options {"widths": [8]}'),
    ],
)
def test_rendezvous_names_the_setting_that_differs_on_both_sides(changes, named):
    port = free_port()
    thread, outcome = serve_in_thread(f"127.0.0.1:{port}", 2, SETTINGS, 20)
    with pytest.raises(rendezvous.RendezvousError, match="Process 0 stopped the run") as stopped:
        rendezvous.check_in(f"127.0.0.1:{port}", 1, 2, {**SETTINGS, **changes}, 20)
    thread.join()
    assert named in str(stopped.value) and named in outcome[0] and "only --process-id differs" in outcome[0]


@pytest.mark.parametrize("chief,other", [(2, 3), (3, 2)])
def test_rendezvous_names_a_different_process_count_at_once(chief, other):
    port = free_port()
    started = time.monotonic()
    thread, outcome = serve_in_thread(f"127.0.0.1:{port}", chief, {}, 20)
    with pytest.raises(rendezvous.RendezvousError, match=f"--num-processes {other} \\(process 0: {chief}\\)"):
        rendezvous.check_in(f"127.0.0.1:{port}", 1, other, {}, 20)
    thread.join()
    assert "--num-processes" in outcome[0] and time.monotonic() - started < 10  # not after the timeout


def test_rendezvous_names_the_missing_processes_after_the_timeout():
    port = free_port()
    thread, outcome = serve_in_thread(f"127.0.0.1:{port}", 4, {}, 1.5)
    with pytest.raises(rendezvous.RendezvousError, match="Process 0 stopped the run: Processes 1, 3 of 4"):
        rendezvous.check_in(f"127.0.0.1:{port}", 2, 4, {}, 20)
    thread.join()
    assert "did not start within 1.5 s (--startup-timeout; here: processes 0, 2)" in outcome[0]


def test_rendezvous_without_process_0_says_so_after_the_timeout():
    started = time.monotonic()
    with pytest.raises(rendezvous.RendezvousError, match="Process 0 did not answer at 127.0.0.1:.* within 1 s"):
        rendezvous.check_in(f"127.0.0.1:{free_port()}", 1, 2, {}, 1)
    assert time.monotonic() - started < 5


@pytest.fixture
def connected(monkeypatch) -> threading.Event:
    """Set once a process has connected to the chief (`socket.create_connection` returned)."""
    event, create_connection = threading.Event(), socket.create_connection

    def connect(*args, **kwargs):
        connection = create_connection(*args, **kwargs)
        event.set()
        return connection

    monkeypatch.setattr(socket, "create_connection", connect)
    return event


@pytest.mark.parametrize("duplicate", [0, 1])
def test_rendezvous_refuses_a_process_id_taken_and_tells_that_process_why(duplicate, connected):
    """A second --process-id 0 (the chief's) used to be admitted as a worker; a refused duplicate heard only
    "closed the connection without an answer"."""
    address = f"127.0.0.1:{free_port()}"
    thread, outcome = serve_in_thread(address, 3, {}, 20)
    heard = []

    def check_in(process_id):
        try:
            rendezvous.check_in(address, process_id, 3, {}, 20)
        except rendezvous.RendezvousError as error:
            heard.append(str(error))

    first = threading.Thread(target=check_in, args=(1,))
    first.start()
    connected.wait(10)  # process 1 is in before the duplicate: the chief answers it, whichever it accepts first
    check_in(duplicate)
    first.join()
    thread.join()
    taken = f"Two processes were started with --process-id {duplicate}: process id {duplicate} is already taken"
    assert len(heard) == 2 and all(f"Process 0 stopped the run: {taken}" in text for text in heard), heard
    assert taken in outcome[0] and "Give each process its own --process-id, 0 to 2." in outcome[0]


def test_a_process_waiting_to_be_accepted_when_the_chief_stops_hears_why(connected):
    """Process 1 connects while the chief reads a duplicate process 0's check-in: closing the listening socket with
    process 1 still queued reset its connection ("Connection reset by peer") instead of telling it why."""
    address = f"127.0.0.1:{free_port()}"
    thread, outcome = serve_in_thread(address, 3, {}, 20)
    duplicate = connect_when_listening(address)  # accepted, and says nothing yet
    connected.clear()
    heard = []
    first = threading.Thread(target=lambda: heard.append(check_in_error(address, 1)))
    first.start()
    connected.wait(10)
    time.sleep(0.2)  # the chief is still waiting for the duplicate's line: process 1 stays queued
    duplicate.sendall((json.dumps({"process_id": 0, "num_processes": 3, "settings": {}}) + "\n").encode())
    refusal = duplicate.makefile().readline()
    duplicate.close()
    first.join()
    thread.join()
    assert "process id 0 is already taken" in refusal
    assert heard and "Process 0 stopped the run: Two processes were started with --process-id 0" in heard[0], heard


def connect_when_listening(address: str) -> socket.socket:
    deadline = time.monotonic() + 10
    while True:
        try:
            return socket.create_connection(rendezvous.split_address(address), timeout=10)
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def check_in_error(address: str, process_id: int) -> str | None:
    try:
        rendezvous.check_in(address, process_id, 3, {}, 20).close()
    except rendezvous.RendezvousError as error:
        return str(error)
    return None


def checked_in(num_processes: int) -> tuple[dict, dict]:
    """(the chief's connections, {process id: its connection to the chief}) once all have checked in."""
    address = f"127.0.0.1:{free_port()}"
    peers = {}

    def check_in(process_id):
        peers[process_id] = rendezvous.check_in(address, process_id, num_processes, {}, 20)

    checkers = [threading.Thread(target=check_in, args=(i,)) for i in range(1, num_processes)]
    for checker in checkers:
        checker.start()
    chief_peers = rendezvous.serve(address, num_processes, {}, 20)
    for checker in checkers:
        checker.join()
    return chief_peers, peers


def test_watchdog_names_a_lost_process_on_every_other_and_not_one_that_finished():
    """Processes 0, 1, 2 checked in; 1 finishes ("done"), then 2 dies: 0 and 1 (told by 0) name process 2. Watchdogs
    of processes that stopped watching say nothing."""
    chief_peers, peers = checked_in(3)
    lost = {i: threading.Event() for i in range(3)}
    heard = {}

    def on_lost(process_id):
        return lambda message: (heard.update({process_id: message}), lost[process_id].set())

    chief = rendezvous.Watchdog(chief_peers, 0, 3, on_lost(0))
    rendezvous.Watchdog({0: peers[1]}, 1, 3, on_lost(1)).close(finished=True)  # 1 completed: its exit is no loss
    time.sleep(0.2)
    assert not any(event.is_set() for event in lost.values())
    peers[2].close()  # process 2 dies: the OS closes its end
    assert lost[0].wait(5)
    assert heard[0].startswith("Process 2 of 3 ended before the run finished (killed, or stopped by an error")
    assert "process 0 stops too" in heard[0] and "--resume" in heard[0]
    assert set(heard) == {0}  # process 1 stopped watching; process 2 is the lost one
    chief.close(finished=False)


def test_watchdog_of_a_worker_names_the_process_the_chief_lost():
    chief_peers, peers = checked_in(3)
    heard, told = [], threading.Event()
    rendezvous.Watchdog(chief_peers, 0, 3, lambda message: None)
    rendezvous.Watchdog({0: peers[1]}, 1, 3, lambda message: (heard.append(message), told.set()))
    peers[2].close()
    assert told.wait(5) and heard[0].startswith("Process 2 of 3 ended") and "process 1 stops too" in heard[0]


def test_watchdog_names_the_lost_process_when_the_loss_first_shows_as_an_error_of_this_one():
    """gloo raises "Connection closed by peer" in the chief as the worker dies: the chief used to print that, then
    hang in JAX's shutdown."""
    chief_peers, peers = checked_in(2)
    heard = []
    chief = rendezvous.Watchdog(chief_peers, 0, 2, heard.append)
    peers[1].close()
    chief.close(finished=False)  # at once, as `distribute.session` does on an exception
    assert len(heard) == 1 and heard[0].startswith("Process 1 of 2 ended before the run finished")


def test_several_processes_without_jax_installed_name_the_install(tmp_path, monkeypatch, capsys):
    """The project's plain install has no JAX; `trainer.cluster_settings` imported it on every backend and the CLI
    said only "No module named 'jax'"."""
    from kerascnn.train.__main__ import main

    monkeypatch.setitem(sys.modules, "jax", None)  # import jax raises ImportError
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"))
    flags = ["--model", "lenet5", "--out", str(tmp_path / "run"), "--coordinator", "127.0.0.1:1"]
    assert main([*flags, "--num-processes", "2", "--process-id", "0"]) == 2
    error = capsys.readouterr().err
    assert "error: Training across several processes needs JAX, which is not installed" in error
    assert "pip install 'jax[cpu]'" in error and "KERAS_BACKEND=jax" in error
    assert not (tmp_path / "run").exists()


def test_rendezvous_names_a_port_in_use():
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(rendezvous.RendezvousError, match=f"port {port} on 127.0.0.1 is already in use"):
            rendezvous.serve(f"127.0.0.1:{port}", 2, {}, 5)


def cli_worker(tmp_path, process_id: int, port: int, *flags: str) -> subprocess.Popen:
    args = ["--model", "lenet5", "--limit", "64", "--no-tensorboard", "--out", str(tmp_path / f"run{process_id}")]
    args += ["--coordinator", f"127.0.0.1:{port}", "--num-processes", "2", "--process-id", str(process_id), *flags]
    (tmp_path / "tmp").mkdir(exist_ok=True)
    env = {**WORKER_ENV, "TMPDIR": str(tmp_path / "tmp")}
    return start_worker(["-m", "kerascnn.train", *args], env, cwd=tmp_path)


def test_cli_with_a_missing_process_stops_naming_it_and_writes_nothing(tmp_path):
    port = free_port()
    chief = cli_worker(tmp_path, 0, port, "--startup-timeout", "4")
    listening = set()
    while chief.poll() is None:
        listening |= listen_addresses(port)
        time.sleep(0.1)
    output = chief.communicate(timeout=240)[0]
    assert chief.returncode == 2, output
    assert "error: Process 1 of 2 did not start within 4 s (--startup-timeout" in output
    assert listening == {"127.0.0.1"}  # bound to the address given, not *:port
    assert not (tmp_path / "run0").exists()


def test_cli_processes_with_other_settings_stop_before_the_first_step(tmp_path):
    """--epochs 2 against 1 used to train, then fail in a collective, leaving best.keras without metrics.json and
    process 1's scratch folder."""
    port = free_port()
    workers = [cli_worker(tmp_path, i, port, "--epochs", str(i + 1)) for i in range(2)]
    try:
        logs = [worker.communicate(timeout=240)[0] for worker in workers]
    finally:
        for worker in workers:
            worker.kill()
    assert [w.returncode for w in workers] == [2, 2], logs
    assert all("--epochs 2 (process 0: 1)" in log for log in logs), logs
    assert not (tmp_path / "run0").exists() and not (tmp_path / "run1").exists()
    assert not list((tmp_path / "tmp").iterdir())  # no kerascnn-process1-* scratch folder


def test_a_host_name_that_is_loopback_here_is_pointed_out(monkeypatch):
    """Debian maps a machine's own name to 127.0.1.1: listening there, process 0 is out of the other machines' reach."""
    monkeypatch.setattr(socket, "getaddrinfo", lambda host, port: [(None, None, None, "", ("127.0.1.1", 0))])
    assert rendezvous.loopback_name("node0") == "127.0.1.1"
    assert rendezvous.loopback_name("127.0.0.1") is None and rendezvous.loopback_name("localhost") is None
    monkeypatch.setattr(socket, "getaddrinfo", lambda host, port: [(None, None, None, "", ("10.0.0.1", 0))])
    assert rendezvous.loopback_name("node0") is None
