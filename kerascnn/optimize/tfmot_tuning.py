"""Quantization-aware training and magnitude pruning of a tf_keras twin with tensorflow-model-optimization.

- QAT: `quantize_model` inserts fake-quantization (int8 weights per channel, int8 activations, batch norm
  folded into the convolution) and fine-tunes, so the weights learn to live on the int8 grid.
- Pruning: `prune_low_magnitude` zeroes the smallest-magnitude weights of every Conv2D (1x1 and full)
  and Dense kernel (tfmot leaves DepthwiseConv2D dense), sparsity rising from 0 to the target along a
  PolynomialDecay schedule (cubic), then `strip_pruning` leaves plain layers whose kernels hold the zeros.
- Pruning-preserving QAT: QAT of a pruned model with `Default8BitPrunePreserveQuantizeScheme`, which keeps
  the zeros while the weights move.
"""

from __future__ import annotations

import numpy as np

from kerascnn.optimize.legacy import tf_keras_and_tfmot

PRUNABLE = ("Conv2D", "Dense")  # tfmot's registry keeps DepthwiseConv2D (9 weights per channel) dense


def _fine_tune(model, images, labels, epochs: int, lr: float, batch_size: int, callbacks=(), verbose="auto"):
    k, _ = tf_keras_and_tfmot()
    model.compile(optimizer=k.optimizers.Adam(lr), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(
        images, labels, batch_size=batch_size, epochs=epochs, callbacks=list(callbacks), shuffle=True, verbose=verbose
    )
    return model


def quantization_aware(
    twin,
    images,
    labels,
    epochs: int = 2,
    lr: float = 1e-4,
    batch_size: int = 128,
    preserve_sparsity: bool = False,
    verbose="auto",
):
    """QAT-fine-tuned model made from the tf_keras `twin` (convert it with Optimize.DEFAULT and no
    calibration: the fake-quantization layers carry the ranges).

    Fake quantization rounds each weight and activation x to the int8 grid in the forward pass,
    x_q = (q - zero_point) * scale with q = round(x / scale) + zero_point clipped to the int8 range (weights per
    output channel, symmetric), and passes the gradient straight through, so the weights learn values that
    survive int8.

    Args:
        twin: the tf_keras twin (`to_tf_keras`) of a kerascnn model.
        images, labels: normalized training images and integer labels.
        epochs: fine-tuning epochs.
        lr: Adam's learning rate (sparse categorical cross-entropy).
        batch_size: images per step.
        preserve_sparsity: keep the zeros of a pruned twin (pruning-preserving QAT).
        verbose: tf_keras `fit`'s verbosity ("auto", 0, 1 or 2).

    Returns:
        The fine-tuned tf_keras model with fake-quantization wrappers; `kerascnn.export.convert(model, "int8",
        quantization_aware=True)` converts it without calibration images.

    Raises:
        ImportError: tensorflow-model-optimization or tf-keras is not installed.

    Example:
        >>> import numpy as np
        >>> from kerascnn.models import create
        >>> from kerascnn.optimize import quantization_aware, to_tf_keras
        >>> rng = np.random.default_rng(0)
        >>> images, labels = rng.normal(size=(16, 8, 8, 1)).astype("float32"), rng.integers(0, 3, 16)
        >>> twin = to_tf_keras(create("vgg", (8, 8, 1), 3, widths=(4,)))
        >>> qat = quantization_aware(twin, images, labels, epochs=1, batch_size=8, verbose=0)
        >>> [type(layer).__name__ for layer in qat.layers[1:3]]
        ['QuantizeLayer', 'QuantizeWrapperV2']
    """
    _, tfmot = tf_keras_and_tfmot()
    quantize = tfmot.quantization.keras
    if preserve_sparsity:
        scheme = tfmot.experimental.combine.Default8BitPrunePreserveQuantizeScheme()
        model = quantize.quantize_apply(quantize.quantize_annotate_model(twin), scheme)
    else:
        model = quantize.quantize_model(twin)
    return _fine_tune(model, images, labels, epochs, lr, batch_size, verbose=verbose)


def prune(
    twin, images, labels, sparsity: float, epochs: int = 2, lr: float = 1e-4, batch_size: int = 128, verbose="auto"
):
    """`twin` with `sparsity` of each Conv2D and Dense kernel zeroed, fine-tuned and stripped of
    the pruning wrappers. Fine-tunes the layers of `twin` in place: build a fresh twin for other uses.

    The schedule rises from 0 to `sparsity` over the first two thirds of the fine-tuning steps (at least one
    step), and the last third trains at the target: at step t of T = 2/3 of the steps, the target sparsity is
    s_t = sparsity * (1 - (1 - t / T)^3) (tfmot's PolynomialDecay, power 3), updated every steps/30 steps.

    Args:
        twin: the tf_keras twin (`to_tf_keras`) of a kerascnn model; its layers are fine-tuned in place.
        images, labels: normalized training images and integer labels.
        sparsity: the fraction of each prunable kernel's weights set to zero, in (0, 1).
        epochs: fine-tuning epochs, >= 1.
        lr: Adam's learning rate (sparse categorical cross-entropy).
        batch_size: images per step.
        verbose: tf_keras `fit`'s verbosity ("auto", 0, 1 or 2).

    Returns:
        A tf_keras model of plain layers whose Conv2D and Dense kernels hold the zeros (`sparsity_per_layer`).

    Raises:
        ValueError: `sparsity` is not in (0, 1), or `epochs` < 1.
        ImportError: tensorflow-model-optimization or tf-keras is not installed.

    Example:
        >>> import numpy as np
        >>> from kerascnn.models import create
        >>> from kerascnn.optimize import prune, sparsity_per_layer, to_tf_keras
        >>> rng = np.random.default_rng(0)
        >>> images, labels = rng.normal(size=(16, 8, 8, 1)).astype("float32"), rng.integers(0, 3, 16)
        >>> twin = to_tf_keras(create("vgg", (8, 8, 1), 3, widths=(4,)))
        >>> pruned = prune(twin, images, labels, 0.5, epochs=1, batch_size=8, verbose=0)
        >>> sparsity_per_layer(pruned)
        {'block1_conv1_conv': 0.5, 'block1_conv2_conv': 0.5, 'head_classifier': 0.5}
    """
    if not 0.0 < sparsity < 1.0:
        raise ValueError(f"sparsity must be in (0, 1), e.g. 0.5. Received: sparsity={sparsity}.")
    if epochs < 1:
        raise ValueError(f"Pruning needs at least one epoch of fine-tuning. Received: epochs={epochs}.")
    k, tfmot = tf_keras_and_tfmot()
    sparse = tfmot.sparsity.keras
    steps = epochs * int(np.ceil(len(images) / batch_size))
    schedule = sparse.PolynomialDecay(
        initial_sparsity=0.0,
        final_sparsity=sparsity,
        begin_step=0,
        end_step=max(1, (2 * steps) // 3),
        frequency=max(1, steps // 30),
    )

    def wrap(layer):
        if type(layer).__name__ in PRUNABLE:
            return sparse.prune_low_magnitude(layer, pruning_schedule=schedule)
        return layer

    model = k.models.clone_model(twin, clone_function=wrap)  # the wrappers hold twin's own layers and weights
    _fine_tune(model, images, labels, epochs, lr, batch_size, callbacks=[sparse.UpdatePruningStep()], verbose=verbose)
    return sparse.strip_pruning(model)


def sparsity_per_layer(model) -> dict[str, float]:
    """Fraction of exact zeros in each Conv2D and Dense kernel, by layer name.

    Args:
        model: a Keras model (tf_keras or Keras 3); DepthwiseConv2D and other layers are left out.

    Returns:
        A dict from layer name to zeros / kernel size (rounded to 4 decimals), in layer order.

    Example:
        >>> from kerascnn.models import create
        >>> from kerascnn.optimize import sparsity_per_layer, to_keras_builtins
        >>> sparsity_per_layer(to_keras_builtins(create("vgg", (8, 8, 1), 3, widths=(4,))))  # nothing pruned yet
        {'block1_conv1_conv': 0.0, 'block1_conv2_conv': 0.0, 'head_classifier': 0.0}
    """
    result = {}
    for layer in model.layers:
        if type(layer).__name__ in PRUNABLE:
            kernel = np.asarray(layer.weights[0])
            result[layer.name] = round(float((kernel == 0).mean()), 4)
    return result
