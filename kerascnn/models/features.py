"""The features a model's GAP head receives, for class activation maps."""

from __future__ import annotations

import keras

from kerascnn.layers import GAPHead


def head_features(model: keras.Model):
    """The GAP head of `model` and a model from the input to the features the head receives.

    `head.class_maps(features_model(x))` gives the per-class maps (class activation maps).

    Args:
        model: a functional model with exactly one `kerascnn.layers.GAPHead`.

    Returns:
        (head, features_model), the GAPHead layer and a `keras.Model` from `model.input` to the head's input.

    Raises:
        ValueError: `model` has no GAPHead or more than one.

    Example:
        >>> import numpy as np
        >>> from kerascnn.models import create, head_features
        >>> head, features = head_features(create("nin", (28, 28, 1), 10, widths=(8, 8, 8)))
        >>> images = np.zeros((2, 28, 28, 1), "float32")
        >>> tuple(head.class_maps(features(images)).shape)  # (batch, height, width, classes)
        (2, 7, 7, 10)
    """
    heads = [layer for layer in model.layers if isinstance(layer, GAPHead)]
    if len(heads) != 1:
        raise ValueError(f"Model {model.name!r} has {len(heads)} GAPHead layers; class maps need exactly one.")
    return heads[0], keras.Model(model.input, heads[0].input, name=f"{model.name}_features")
