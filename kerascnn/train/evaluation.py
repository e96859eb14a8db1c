"""Evaluation after `fit`: the test accuracy of best.keras and of the last network (with --tta-flip, of each image
and its mirror: `flip_tta_accuracy`), with the history from state.json, as the run's metrics (`evaluate`), which
the chief writes to metrics.json through `Run`. Rule: across several processes only the last network is tested,
each process on its shard."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np

from kerascnn import rundir
from kerascnn.rundir import Run
from kerascnn.saving import load_model
from kerascnn.train import distribute
from kerascnn.train.config import TrainConfig
from kerascnn.train.feeding import SINGLE_PROCESS, Data, in_order, test_batches


def flip_tta_accuracy(model, batches) -> float:
    """Accuracy of horizontal-flip test-time augmentation: the class of p(x) + p(mirror(x)), the outputs of each
    image and its left-right mirror summed (the same class as their mean). `batches` yields (images, one-hot
    labels) as NumPy arrays."""
    correct = total = 0
    for images, targets in batches:
        images = np.asarray(images)
        outputs = keras.ops.convert_to_numpy(model.predict_on_batch(images))
        outputs = outputs + keras.ops.convert_to_numpy(model.predict_on_batch(images[:, :, ::-1]))
        correct += int((outputs.argmax(-1) == np.asarray(targets).argmax(-1)).sum())
        total += len(images)
    return correct / max(total, 1)


def evaluate(
    config: TrainConfig,
    run_dir: Path,
    data: Data,
    network,
    scope,
    seconds: float,
    cluster: distribute.Cluster = SINGLE_PROCESS,
    epoch_seconds: list | None = None,
    keep_why: str | None = None,
) -> dict:
    """The metrics of the run (history from state.json; test accuracy of best.keras, the epoch chosen by
    validation accuracy or with --keep last the last one, and of the last network), written to metrics.json by the
    chief. `keep_why`: why the last epoch was kept without --keep (`small_data.keep_rule`), into the metrics.

    Across several processes every process evaluates its shard of the test split together, on the last
    network only (best.keras is on the chief's disk).
    """
    run = Run(run_dir)
    final_state = run.state() if cluster.is_chief else None
    metrics = {
        "model": config.model,
        "parameters": int(network.count_params()),
        "dataset": data.dataset.name,
        "epochs": final_state["epoch"] + 1 if final_state else 0,
        "best_epoch": final_state.get("best_epoch", -1) + 1 if final_state else 0,
        "best_val_accuracy": final_state.get("best_val_accuracy") if final_state else None,
        "kept": config.keep,  # "last": best_epoch is the last epoch, best_val_accuracy its validation accuracy
        "validation_images": data.count("validation") * data.num_shards,
        **({"keep_why": keep_why} if keep_why else {}),
        "train_seconds_this_session": round(seconds, 1),
        "epoch_seconds_this_session": epoch_seconds or [],
        "backend": keras.backend.backend(),
        "history": final_state["history"] if final_state else [],
        "input_path": data.input_path,
        "test_split": data.test_source,
        "test_images": data.count("test") * data.num_shards,
        "skipped_images": len(getattr(data.dataset, "skipped", [])),
        "processes": cluster.num_processes,
    }
    if data.count("test"):
        with scope():
            best_path = run.path(rundir.BEST_MODEL)  # the epoch --keep chose (`Run.model_file`), else the last one
            candidates = [("last", network)]
            if not cluster.multi_process:
                candidates.insert(0, ("best", load_model(best_path) if best_path.exists() else network))
            for name, model in candidates:
                model.compile(
                    loss=keras.losses.CategoricalCrossentropy(),
                    metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")],
                )
                if data.stream is not None:
                    loss, accuracy = model.evaluate(
                        data.stream.batches("test", 512, num_shards=data.num_shards, shard_index=data.shard_index),
                        verbose=0,
                    )
                else:
                    loss, accuracy = model.evaluate(in_order(data, "test", 512), verbose=0)
                metrics[f"test_accuracy_{name}"] = round(float(accuracy), 5)
                metrics[f"test_loss_{name}"] = round(float(loss), 5)
                if config.tta_flip and not cluster.multi_process:
                    metrics[f"test_accuracy_tta_{name}"] = round(flip_tta_accuracy(model, test_batches(data)), 5)
        metrics["test_accuracy"] = metrics[f"test_accuracy_{candidates[0][0]}"]
        if f"test_accuracy_tta_{candidates[0][0]}" in metrics:
            metrics["test_accuracy_tta"] = metrics[f"test_accuracy_tta_{candidates[0][0]}"]
    if config.tta_flip and cluster.multi_process:
        print("--tta-flip: not evaluated across several processes (each holds a shard of the test split).")
    if cluster.is_chief:
        run.write_metrics(metrics)
    return metrics
