"""What a small training set needs from a run: batch-norm statistics that belong to the weights, a choice of epoch
that means something, and the way to fine-tuning.

Batch norm's moving mean and variance start at 0 and 1 and move by m_avg <- m m_avg + (1 - m) batch_stat after
every training step (m = the layer's `momentum`, Keras's default 0.99), so after `steps` steps the initial values
still weigh m ** steps. A folder of 150 images at batch 16 trains 135 steps in 15 epochs: 0.99 ** 135 = 26 % of
the statistics the model is validated, tested and saved with are the initial ones, and a network that trained to
75 % accuracy tests at chance (issue 38). When that share is above `UNCONVERGED_SHARE` the run gives the model it
validates, saves and tests statistics recomputed from training images (`kerascnn.train.ema.update_batch_norms`,
PyTorch's `update_bn`), as it already does for the moving average of the weights (--ema); training itself goes on
from the moving statistics, so a resumed run ends where the uninterrupted one does.

A validation split of n images moves its accuracy by 100 / n points per image: below `MIN_CHOOSING_VALIDATION`
images the "best" epoch is chosen by noise (a fine-tuned run kept 63.7 % test "chosen by 100.00 %" of 8 images,
against 72.5 % for its last epoch), so without an explicit --keep the run keeps its last epoch.
"""

from __future__ import annotations

import keras

from kerascnn.train.config import MIN_CHOOSING_VALIDATION

# a share s of the initial variance 1 left in a moving variance v errs by s (1 - v) / v: 1e-3 keeps that under 10 %
# for layers whose variance is 100x below 1 (momentum 0.99: below 688 steps; the quick preset trains 3,440)
UNCONVERGED_SHARE = 1e-3
# fewer training images per class than this, from scratch, and the run points to fine-tuning
FEW_PER_CLASS = 100


def trainable_batch_norms(network: keras.Model) -> list:
    """The BatchNormalization layers of `network` that training updates (frozen ones keep their statistics)."""
    return [
        layer
        for layer in network._flatten_layers()
        if isinstance(layer, keras.layers.BatchNormalization) and layer.trainable
    ]


def initial_share(network: keras.Model, steps: int) -> float:
    """The largest weight, m ** steps, that the initial values (0 and 1) keep in a trainable batch norm's moving
    mean and variance after `steps` training steps; 0.0 for a network without trainable batch norms."""
    momenta = [float(layer.momentum) for layer in trainable_batch_norms(network)]
    return max(momenta) ** steps if momenta else 0.0


def unconverged(network: keras.Model, steps: int, share: float = UNCONVERGED_SHARE) -> bool:
    """True when `steps` training steps leave more than `share` of the initial values in some trainable batch norm's
    moving statistics (`initial_share`): the run then recomputes them from training images.

    Example:
        >>> net = keras.Sequential([keras.Input((4,)), keras.layers.BatchNormalization()])  # momentum 0.99
        >>> unconverged(net, 135), unconverged(net, 3440)
        (True, False)
    """
    return initial_share(network, steps) > share


def recompute_message(network: keras.Model, steps: int, images: int) -> str:
    """The line a run prints when it recomputes its batch-norm statistics."""
    momentum = max(float(layer.momentum) for layer in trainable_batch_norms(network))
    return (
        f"Batch norm: after {steps:,} steps at momentum {momentum:g} the moving statistics would still be "
        f"{100 * initial_share(network, steps):.1f} % their initial values, so the model validated, saved and "
        f"tested gets statistics recomputed from {images:,} training images."
    )


def keep_rule(keep: str | None, validation_images: int, early_stopping: int = 0) -> tuple[str, str | None]:
    """(the --keep the run uses, the reason to print or None). An explicit `keep` wins; without one the run keeps
    the epoch of best validation accuracy, or its last epoch when fewer than `MIN_CHOOSING_VALIDATION` validation
    images cannot choose between epochs (--early-stopping, which itself chooses by validation, keeps "best").

    Example:
        >>> keep_rule(None, 8)[0], keep_rule("best", 8)[0], keep_rule(None, 5000)[0]
        ('last', 'best', 'best')
    """
    if keep is not None:
        return keep, None
    if early_stopping or validation_images >= MIN_CHOOSING_VALIDATION:
        return "best", None
    if validation_images == 0:  # nothing to choose by: every epoch is the best so far, the last one is kept
        return "last", None
    return "last", (
        f"Keeping the last epoch: {validation_images} validation images cannot choose the best one (one image is "
        f"{100 / validation_images:.1f} points of accuracy; give --keep best to choose anyway, or more images)."
    )


def finetune_hint(data_dir: str | None, train_images: int, classes: int, from_scratch: bool) -> str | None:
    """The one line that points a small folder trained from scratch to fine-tuning ImageNet's MobileNetV2 (None
    for datasets, fine-tuned runs and folders of `FEW_PER_CLASS` or more training images per class)."""
    if data_dir is None or not from_scratch or not classes or train_images >= FEW_PER_CLASS * classes:
        return None
    return (
        f"{train_images / classes:.0f} training images per class are few to learn from scratch: fine-tuning "
        f"ImageNet weights usually does much better: python -m kerascnn.train --data-dir {data_dir} "
        "--model mobilenetv2 --weights imagenet --image-size 96 96 (--weights also takes torchvision's "
        "mobilenet_v2-b0353104.pth offline)"
    )
