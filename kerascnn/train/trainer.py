"""One training run, orchestrated: `train` checks the run directory, loads the data, builds (or resumes) the model,
fits it, saves the last network and evaluates, then restores Keras's global settings. Each concern has one owner:

- `kerascnn.train.trainer` (here): the order of the steps, the run directory's files (`check_run_dir`,
  `write_run_files`, `run_lock`), the process settings (`enable_compile_cache`, `keras_globals`,
  `deliberate_traces`, the settings compared across processes: `cluster_settings`) and the messages of the run.
- `kerascnn.train.feeding`: the data: `load_data` (in memory or streamed, `Data`), the inputs of `model.fit`
  (`fit_inputs`), the ordered validation and test batches, the batch-norm sample (`batch_norm_images`).
- `kerascnn.train.building`: the model: the distribution scope, the training model around the network, the
  optimizer and its schedule per fine-tuning phase (`build_model`, `compile_phase`), a resumed checkpoint
  (`resume_model`), and `TrainingError`.
- `kerascnn.train.callbacks`: the callbacks of `fit` (`make_callbacks`) and the message of a NaN stop.
- `kerascnn.train.evaluation`: the test metrics after `fit`, written to metrics.json through `Run` (`evaluate`).
- Below them: `batches` (epoch orders), `checkpoint` (checkpoints, state.json), `ema` (averaged weights,
  batch-norm statistics), `finetune` (weight sources, phases), `small_data` (--keep, hints), `distribute`
  (processes), `config` (the settings), `kerascnn.rundir` (the run directory's layout).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import keras

from kerascnn import rundir
from kerascnn.rundir import Run
from kerascnn.train import distribute, finetune, small_data
from kerascnn.train.building import TrainingError, build_model, compile_phase, distribution_scope, resume_model
from kerascnn.train.callbacks import make_callbacks, nan_message
from kerascnn.train.checkpoint import EpochClock, NaNGuard, atomic_save_model
from kerascnn.train.config import PER_PROCESS_SETTINGS, RESUME_MAY_CHANGE, TrainConfig, flag, resolve, to_yaml
from kerascnn.train.ema import update_batch_norms
from kerascnn.train.evaluation import evaluate
from kerascnn.train.feeding import SINGLE_PROCESS, Data, batch_norm_images, data_spec, fit_inputs, load_data


def compile_cache_dir(setting: str | None, environ=os.environ) -> Path | None:
    """The folder of JAX's persistent compilation cache: --compile-cache DIR, None for "off", else
    $JAX_COMPILATION_CACHE_DIR, else the per-user ~/.cache/kerascnn/jax."""
    if setting == "off":
        return None
    if setting:
        return Path(setting).expanduser()
    if environ.get("JAX_COMPILATION_CACHE_DIR"):
        return Path(environ["JAX_COMPILATION_CACHE_DIR"]).expanduser()
    return Path.home() / ".cache" / "kerascnn" / "jax"


def enable_compile_cache(setting: str | None) -> Path | None:
    """On the JAX backend, keeps compiled XLA programs in `compile_cache_dir(setting)` across runs, so a second
    run of the same model and batch size loads its train and test steps instead of compiling them (programs that
    compile in under a second are not kept, JAX's default). Returns the folder, None where it is off or not JAX."""
    folder = compile_cache_dir(setting)
    if folder is None or keras.backend.backend() != "jax":
        return None
    import jax

    folder.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(folder))
    return folder


def cluster_settings(config: TrainConfig, state: dict | None) -> dict:
    """{flag: value} of everything that must be equal on every process of a run, compared by
    `distribute.initialize` before the first step: every setting but `PER_PROCESS_SETTINGS` (where each process
    meets the others, which one it is, what only the chief reads), the epochs a resumed run has done, and the
    versions of Keras, JAX and kerascnn (`rendezvous.serve` adds the process count)."""
    import kerascnn

    # num_processes as given may be None (taken from KERAS_DISTRIBUTION_NUM_PROCESSES): the rendezvous compares
    # the count each process resolved
    names = [f.name for f in dataclasses.fields(config) if f.name not in PER_PROCESS_SETTINGS | {"num_processes"}]
    settings = {flag(name): getattr(config, name) for name in names}
    settings["--resume (epochs done)"] = state["epoch"] + 1 if state else 0
    settings.update({"Keras": keras.__version__, "JAX": distribute.jax_version(), "kerascnn": kerascnn.__version__})
    return settings


def check_run_dir(config: TrainConfig, cluster: distribute.Cluster = SINGLE_PROCESS) -> tuple[Path, dict | None]:
    """(the run directory, its checkpoint state when resuming), checked before anything is written: `Run.check_start`
    (new, resumed and overwritten runs; only the chief checks a new run's folder).

    Raises:
        RunDirError, CheckpointError: see `Run.check_start`.
    """
    run = Run(config.run_dir, resolve)
    return run.folder, run.check_start(config, RESUME_MAY_CHANGE, chief=cluster.is_chief)


def write_run_files(run_dir: Path, config: TrainConfig, data: Data, normalization_from: str | None = None) -> None:
    """Creates the run directory (`Run.create`): config.yaml, dataset.json and labels.txt. With `config.overwrite`, an
    earlier run's files are deleted first. `normalization_from` names the backbone whose normalization a fine-tuned
    run uses (dataset.json's normalization "from")."""
    # "spec", "skipped" and the file counts let export open the same splits with these statistics again
    # (kerascnn.data.open with recorded=), without re-checking the data or recomputing the statistics
    meta = data.dataset.metadata()
    if normalization_from:
        meta["normalization"]["from"] = normalization_from
    recorded = {
        **meta,
        "reader": "stream",
        "spec": data_spec(config).to_json(),
        "skipped": data.dataset.skipped,
        **data.dataset.facts,
    }
    Run(run_dir).create(to_yaml(config), recorded, data.dataset.labels, overwrite=config.overwrite)


@contextlib.contextmanager
def keras_globals():
    """Restores Keras's dtype policy and distribution on exit: a run with --mixed-precision or --distribute
    must not change the next run in the same process (a notebook)."""
    policy, distribution = keras.mixed_precision.global_policy(), keras.distribution.distribution()
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(policy)
        keras.distribution.set_distribution(distribution)


def train(config: TrainConfig) -> dict:
    """Trains `config.model` and writes the run directory. Returns the metrics written to metrics.json.

    Raises:
        TrainingError: the run cannot start or go on (the message says why and what to do).
        ValueError, FileNotFoundError, RuntimeError: bad data or model options (named in the message).
    """
    with keras_globals(), run_lock(config), deliberate_traces(), distribute.session():
        return _train(config)


def _not_a_retrace(record) -> bool:
    return "triggered tf.function retracing" not in record.getMessage()


@contextlib.contextmanager
def deliberate_traces():
    """Silences TensorFlow's "N out of the last M calls ... triggered tf.function retracing" while a run trains.

    Keras traces a new `tf.function` for every compiled model: the train and validation steps of each fine-tuning
    phase (phase 2 recompiles, its trainable variables differ), the TensorBoard summaries' predictions, and the test
    steps of best.keras and of the last network. TensorFlow's detector keys them all on the code object Keras
    shares between them (`multi_step_on_iterator`), so a small run, with few steps between those compiles, reads
    as one function retraced in a loop (5 traces in 10 calls), where each trace is a new function's first call.
    """
    logger = logging.getLogger("tensorflow")
    logger.addFilter(_not_a_retrace)
    try:
        yield
    finally:
        logger.removeFilter(_not_a_retrace)


def run_lock(config: TrainConfig):
    """`rundir.locked(--out)` on the chief, taken before anything is written or checked in it: a second training
    into the same folder is refused at once, naming the first one's pid. The other processes of a run write no run
    directory; a --resume of a missing folder is left to `check_run_dir` to refuse."""
    cluster = distribute.cluster_from(config.coordinator, config.num_processes, config.process_id)
    if not cluster.is_chief or (config.resume and not config.run_dir.is_dir()):
        return contextlib.nullcontext()
    run = Run(config.run_dir)
    run.check_writable()
    return run.lock()


def _train(config: TrainConfig) -> dict:
    enable_compile_cache(config.compile_cache)  # before JAX compiles anything
    cluster = distribute.cluster_from(config.coordinator, config.num_processes, config.process_id)
    run_dir, state = check_run_dir(config, cluster)
    if cluster.multi_process:  # before anything runs on JAX; nothing is written before all processes agree
        distribute.initialize(cluster, cluster_settings(config, state), config.startup_timeout)
    if state is not None and (config.init_from or config.weights):
        source = finetune.resumed_source(run_dir)  # the weights are the checkpoint's: the source may be gone
    else:
        source = finetune.weight_source(config.init_from, config.weights, config.model)
    normalization = None if source is None else source.normalization
    keras.utils.set_random_seed(config.seed)
    if config.mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
    data = load_data(config, cluster, normalization)
    if config.batch_size % cluster.num_processes:
        raise TrainingError(
            f"--batch-size {config.batch_size} must be divisible by the {cluster.num_processes} "
            "processes (it is the global batch; each process feeds its share)."
        )
    batch_size = config.batch_size // cluster.num_processes  # this process's share of every batch
    if data.count("train") == 0:
        raise TrainingError(
            f"No training images for this process ({data.dataset.name}: "
            f"{data.count('train') * cluster.num_processes} for {cluster.num_processes} processes)."
        )
    steps_per_epoch = math.ceil(data.count("train") / batch_size)

    scope, replicas = distribution_scope(config, cluster)
    if config.batch_size % replicas:
        raise TrainingError(f"--batch-size {config.batch_size} must be divisible by the {replicas} replicas.")
    with scope():
        if state is not None:
            phase = None if source is None else state["epoch"] < config.freeze_epochs
            train_model, network = resume_model(config, data, run_dir, state, steps_per_epoch, phase)
            initial_epoch = state["epoch"] + 1
            print(f"Resuming {run_dir} at epoch {initial_epoch + 1} (epochs 1-{initial_epoch} are done).")
        else:
            network = None
            if source is not None:
                network = finetune.build_network(config, source, data.dataset.input_shape, data.dataset.labels)
                print(f"Fine-tuning from {source.description}")
            phase = None if source is None else config.freeze_epochs > 0
            train_model, network = build_model(config, data, steps_per_epoch, network, phase)
            initial_epoch = 0
    if cluster.is_chief:  # only now: a run that fails its checks leaves nothing behind
        write_run_files(run_dir, config, data, source.description if normalization is not None else None)
    # no --keep: the last epoch when the validation split is too small to choose (config.yaml keeps None)
    keep, keep_why = small_data.keep_rule(
        config.keep, data.count("validation") * data.num_shards, config.early_stopping
    )
    config = dataclasses.replace(config, keep=keep)

    share = (
        f"; process {cluster.process_id} of {cluster.num_processes} reads 1/{cluster.num_processes} of each split"
        if cluster.multi_process
        else ""
    )
    counts = " / ".join(f"{data.count(s) * data.num_shards:,} {s}" for s in ("train", "validation", "test"))
    print(
        f"{config.model}: {network.count_params():,} parameters; {data.dataset.name}: {counts} images "
        f"(test: {data.test_source}); input: {data.input_path}; backend {keras.backend.backend()}, "
        f"jit_compile={train_model.jit_compile}; replicas: {replicas}{share}; run directory {run_dir}"
    )
    hint = small_data.finetune_hint(
        config.data_dir, data.count("train") * data.num_shards, data.num_classes, source is None
    )
    for line in (keep_why, hint):
        if line:
            print(line)

    nan_guard = NaNGuard()
    # processes other than the chief save their (identical) checkpoints into a scratch folder, then delete it
    write_dir = run_dir if cluster.is_chief else Path(tempfile.mkdtemp(prefix=f"kerascnn-process{cluster.process_id}-"))
    clock = EpochClock()
    try:
        # too few steps for the moving statistics: the evaluated and saved model gets recomputed ones
        recompute = not cluster.multi_process and small_data.unconverged(network, config.epochs * steps_per_epoch)
        bn_images = batch_norm_images(config, data, cluster, recompute)
        if recompute:
            print(small_data.recompute_message(network, config.epochs * steps_per_epoch, len(bn_images)))
        callbacks = [*make_callbacks(config, write_dir, data, network, state, nan_guard, cluster, bn_images), clock]
        started = time.perf_counter()
        verbose = "auto" if sys.stdout.isatty() else 2
        # a file that passes the header check but fails to decode when streamed is named (DecodeError)
        naming_bad_files = data.stream.naming_bad_files if data.stream is not None else contextlib.nullcontext
        # one fit, or one per fine-tuning phase still to run: head only, then all layers with a fresh optimizer
        stages = [(initial_epoch, config.epochs, None)] if source is None else finetune.phases(config, initial_epoch)
        for start, end, head_only in stages:
            if nan_guard.triggered:
                break
            if head_only is not None and head_only != phase:
                with scope():
                    compile_phase(train_model, network, config, steps_per_epoch, head_only)
                phase = head_only
            batches, validation, steps, ordering = fit_inputs(config, data, batch_size, steps_per_epoch, start)
            with naming_bad_files():
                train_model.fit(
                    batches,
                    epochs=end,
                    initial_epoch=start,
                    steps_per_epoch=steps,
                    validation_data=validation,
                    callbacks=[*ordering, *callbacks],
                    shuffle=False,
                    verbose=verbose,
                )
        seconds = time.perf_counter() - started

        if nan_guard.triggered:
            raise TrainingError(nan_message(nan_guard, Run(run_dir).state(), run_dir))
        if bn_images is not None:  # fit left the averages (--ema) or the moving statistics: give them their own
            update_batch_norms(train_model, bn_images, config.batch_size)
        atomic_save_model(network, write_dir / rundir.LAST_MODEL)  # every process: saving is collective
        with naming_bad_files():
            return evaluate(config, run_dir, data, network, scope, seconds, cluster, clock.seconds, keep_why)
    finally:
        if not cluster.is_chief:
            shutil.rmtree(write_dir, ignore_errors=True)
