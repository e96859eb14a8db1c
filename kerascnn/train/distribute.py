"""Training on several processes or machines: data parallelism with `keras.distribution` on the JAX backend.

Each process runs the same program with its own process id. Every process first checks in with process 0
(`kerascnn.train.rendezvous`: a missing process or other settings stop them all with one message), then
`keras.distribution.initialize` connects them through a coordinator (`jax.distributed`) that listens on the host
given, not on every interface; `DataParallel` replicates the model on every device of every process and
averages the gradients, so all processes keep identical weights. Every process reads only its own shard of the
input (`StreamingDataset.batches(..., num_shards=num_processes, shard_index=process_id)`), and only the chief
(process 0) writes checkpoints, TensorBoard logs and the final models. While the run lasts, a process that ends
before finishing (killed, or stopped by an error) ends the others within a second, with one line naming it
(`rendezvous.Watchdog`; `session` tells the others when this one finishes).

On the TensorFlow backend Keras 3 supports one machine only: `MirroredStrategy` over its local devices
(`--distribute`). Keras 3's `fit` does not work under `tf.distribute.MultiWorkerMirroredStrategy`
(keras-team/keras#20585), so several machines need KERAS_BACKEND=jax.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re

import keras

from kerascnn.train import rendezvous

# The environment variables keras.distribution.initialize reads too, so one set configures both.
ENV_COORDINATOR = "KERAS_DISTRIBUTION_JOB_ADDRESSES"
ENV_NUM_PROCESSES = "KERAS_DISTRIBUTION_NUM_PROCESSES"
ENV_PROCESS_ID = "KERAS_DISTRIBUTION_PROCESS_ID"
# where process 0's coordinator listens (JAX's variable; default here: the host of --coordinator)
ENV_BIND_ADDRESS = "JAX_COORDINATOR_BIND_ADDRESS"


class DistributionError(ValueError):
    """A cluster setting that cannot work; the message says which and what to do."""


@dataclasses.dataclass(frozen=True)
class Cluster:
    """Where this process stands in a multi-process run: `num_processes` processes, this one `process_id`,
    meeting at `coordinator` ("host:port" of process 0)."""

    coordinator: str | None = None
    num_processes: int = 1
    process_id: int = 0

    @property
    def multi_process(self) -> bool:
        return self.num_processes > 1

    @property
    def is_chief(self) -> bool:
        """Process 0: the one that writes the run directory."""
        return self.process_id == 0


def cluster_from(
    coordinator: str | None = None, num_processes: int | None = None, process_id: int | None = None, environ=None
) -> Cluster:
    """The cluster from flags, falling back to KERAS_DISTRIBUTION_JOB_ADDRESSES / _NUM_PROCESSES / _PROCESS_ID.

    Args:
        coordinator: "host:port" of process 0, which every process can reach.
        num_processes: how many processes take part (1: a single process).
        process_id: this process's index, 0 .. num_processes - 1.
        environ: the environment to read (default `os.environ`).

    Returns:
        A `Cluster`.

    Raises:
        DistributionError: a count or id out of range, or several processes without a coordinator.

    Example:
        >>> cluster_from("10.0.0.1:1234", 2, 1).is_chief
        False
    """
    environ = os.environ if environ is None else environ
    coordinator = coordinator or environ.get(ENV_COORDINATOR) or None

    def number(value, variable, flag):
        if value is not None:
            return value
        text = environ.get(variable)
        if text is None:
            return None
        try:
            return int(text)
        except ValueError:
            raise DistributionError(f"{variable} must be an integer (or use {flag}). Received: {text!r}") from None

    num_processes = number(num_processes, ENV_NUM_PROCESSES, "--num-processes")
    process_id = number(process_id, ENV_PROCESS_ID, "--process-id")
    num_processes = 1 if num_processes is None else num_processes
    process_id = 0 if process_id is None else process_id
    if num_processes < 1:
        raise DistributionError(f"--num-processes must be >= 1. Received: {num_processes}")
    if not 0 <= process_id < num_processes:
        raise DistributionError(
            f"--process-id must be in 0..{num_processes - 1} for --num-processes "
            f"{num_processes}. Received: {process_id}"
        )
    if num_processes > 1:
        if not coordinator:
            raise DistributionError(
                f"--num-processes {num_processes} needs --coordinator HOST:PORT (the address of "
                f"process 0, reachable from every process; or set {ENV_COORDINATOR})."
            )
        first = coordinator.split(",")[0]
        if not re.fullmatch(r"[\w.\-\[\]:]+:\d+", first):
            raise DistributionError(f"--coordinator must be HOST:PORT, e.g. 10.0.0.1:1234. Received: {coordinator!r}")
    return Cluster(coordinator, num_processes, process_id)


def initialize(cluster: Cluster, settings: dict | None = None, timeout: float = rendezvous.DEFAULT_TIMEOUT) -> None:
    """Connects this process to the others (no-op for a single process). Call before building any model.

    First every process checks in with process 0 (`kerascnn.train.rendezvous`), which stops them all with one
    message when a process does not start within `timeout` seconds (naming it) or was started with other
    `settings` (naming the setting); then `keras.distribution.initialize` connects them through JAX. Process 0
    listens on the coordinator's own host only (JAX alone would listen on every interface); the environment
    variable JAX_COORDINATOR_BIND_ADDRESS (e.g. `[::]:1234`, behind NAT) chooses another address for both.

    On a machine without accelerators JAX's cross-process collectives need gloo
    (`jax_cpu_collectives_implementation`), which is switched on here.

    Args:
        cluster: this process's place in the run (`cluster_from`).
        settings: {label: value} that must be equal on every process, a label being the flag to change
            (e.g. {"--seed": 0}); JSON-serializable.
        timeout: seconds each process waits for all the others.

    Raises:
        DistributionError: several processes on a backend other than JAX.
        rendezvous.RendezvousError (a DistributionError's sibling, also a ValueError): a missing process, other
            settings, a coordinator port in use or not an address of process 0's machine.
    """
    if not cluster.multi_process:
        return
    backend = keras.backend.backend()
    if backend != "jax":
        raise DistributionError(
            f"Training across {cluster.num_processes} processes needs the JAX backend (KERAS_BACKEND=jax); this is "
            f"{backend}. Keras 3 supports only one machine on TensorFlow (--distribute: MirroredStrategy over its "
            "local devices); its fit does not run under MultiWorkerMirroredStrategy (keras-team/keras#20585)."
        )
    import jax

    coordinator = cluster.coordinator.split(",")[0]  # Keras's job addresses: process 0's comes first
    bind = os.environ.get(ENV_BIND_ADDRESS) or coordinator
    global _watchdog
    settings = settings or {}
    if cluster.is_chief:
        peers = rendezvous.serve(bind, cluster.num_processes, settings, timeout)
    else:
        peers = {0: rendezvous.check_in(coordinator, cluster.process_id, cluster.num_processes, settings, timeout)}
    _watchdog = rendezvous.Watchdog(peers, cluster.process_id, cluster.num_processes)
    if _cpu_only():  # decided without jax.devices(), which must not run before jax.distributed.initialize
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    # keras.distribution.initialize takes no bind address; jax.distributed.initialize reads this variable
    os.environ[ENV_BIND_ADDRESS] = bind
    keras.distribution.initialize(coordinator, cluster.num_processes, cluster.process_id)


_watchdog: rendezvous.Watchdog | None = None  # this process's, from `initialize` until `session` ends


@contextlib.contextmanager
def session():
    """The span of a run: on leaving it, this process stops watching the others (`initialize`'s watchdog) and,
    when the run completed, tells them so first; a run that raised ends its connections without that word, and the
    others stop, naming this process, instead of waiting in a collective. A no-op for a single process.

    Example:
        >>> with session():
        ...     initialize(cluster, settings)
        ...     ...  # build, fit, save
    """
    global _watchdog
    finished = False
    try:
        yield
        finished = True
    finally:
        watchdog, _watchdog = _watchdog, None
        if watchdog is not None:
            watchdog.close(finished)


def jax_version() -> str:
    """JAX's version, for the settings every process must share.

    Raises:
        DistributionError: JAX is not installed (the project's plain install leaves it out).
    """
    try:
        import jax
    except ImportError:
        raise DistributionError(
            "Training across several processes needs JAX, which is not installed here: install it on every machine "
            "(pip install 'jax[cpu]', or 'jax[cuda12]' for NVIDIA GPUs) and start every process with KERAS_BACKEND=jax."
        ) from None
    return jax.__version__


def _cpu_only() -> bool:
    """True when JAX will run on the CPU: JAX_PLATFORMS says so, or no accelerator plugin is installed."""
    platforms = os.environ.get("JAX_PLATFORMS", "")
    if platforms:
        return platforms.split(",")[0].strip() == "cpu"
    import importlib.util

    return not any(
        importlib.util.find_spec(name)
        for name in ("jax_cuda12_plugin", "jax_cuda13_plugin", "libtpu", "jax_rocm60_plugin")
    )


def data_parallel(cluster: Cluster) -> keras.distribution.DataParallel:
    """Sets and returns a `DataParallel` distribution over every device of every process.

    The input is not auto-sharded by Keras (which would make every process decode every image and drop the
    others' share): each process passes the batches of its own shard, and Keras assembles the global batch
    from the processes' local ones.
    """
    distribution = keras.distribution.DataParallel(auto_shard_dataset=not cluster.multi_process)
    keras.distribution.set_distribution(distribution)
    return distribution
