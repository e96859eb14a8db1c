"""Fixtures shared across test folders."""

import os
import sys

import pytest

# One compute thread per process: pytest -n runs a worker per core and the backend passes beside them, and
# TensorFlow's, XLA's and PyTorch's thread pools of a core count each would oversubscribe the cores. Set before
# any test imports a backend; the subprocesses the tests start inherit it.
SINGLE_THREAD = {
    "OMP_NUM_THREADS": "1",
    "TF_NUM_INTRAOP_THREADS": "1",
    "TF_NUM_INTEROP_THREADS": "1",
    "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1",
}
for _name, _value in SINGLE_THREAD.items():
    os.environ.setdefault(_name, _value)

# Bytecode caches on: the installs skip pip's byte-compilation (53ca5cb), so with PYTHONDONTWRITEBYTECODE set (as on
# this project's machines) each of the dozens of Python processes the suite starts compiled TensorFlow's, Keras's and
# JAX's sources anew: about 20 of a JAX CLI run's 34 CPU s. The first process to import a module now writes its
# .pyc (into .venv, or __pycache__/, which git ignores) and the others read it.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
sys.dont_write_bytecode = False

# kerascnn first (its TF_ENABLE_ONEDNN_OPTS default, kerascnn/__init__.py), before any test module imports TensorFlow:
# every test process, and every subprocess it starts, computes with the same kernels
import kerascnn  # noqa: E402, F401
from tests import backend_passes  # noqa: E402  (after the thread settings: numpy reads OMP_NUM_THREADS)
from tests.helpers import once_per_session  # noqa: E402

SMALL_VGG = dict(
    model="vgg",
    limit=2048,
    epochs=4,
    batch_size=32,
    lr=3e-3,
    tensorboard=False,
    model_options=dict(widths=(16, 32, 64)),
)


@pytest.fixture(scope="session")
def small_vgg_run(request):
    """(run directory, metrics) of a vgg trained briefly on 2,048 Fashion-MNIST images (4 epochs, 256 steps: enough
    for batch norm's running averages, momentum 0.99, to follow the weights). Trained once per session, whatever the
    number of pytest -n workers; tests that change files copy it first (`tests.helpers.copy_run`)."""
    from kerascnn.train import resolve, train

    def build(root):
        return root / "run", train(resolve(dict(SMALL_VGG, out=str(root / "run"))))

    return once_per_session(request, "small_vgg", build)


# tests/backend_passes.py: the JAX and PyTorch passes of tests/test_backends.py start once collection is done


def pytest_configure(config):
    if not hasattr(config, "workerinput"):  # pytest itself, or the pytest -n controller
        backend_passes.create_folder(config)


def pytest_configure_node(node):
    """pytest -n: each worker learns where the controller's passes write."""
    node.workerinput[backend_passes.FOLDER_KEY] = str(backend_passes.folder_of(node.config))


def pytest_xdist_node_collection_finished(node, ids):
    backend_passes.start(node.config, ids)


def pytest_collection_finish(session):
    if not hasattr(session.config, "workerinput"):  # without -n (a worker's collection is the controller's)
        backend_passes.start(session.config, [item.nodeid for item in session.items])


def pytest_unconfigure(config):
    if not hasattr(config, "workerinput"):
        backend_passes.stop(config)
