"""Which input sizes a built model takes: its spatial sizes propagated layer by layer through the graph.

Every windowed layer in `kerascnn.layers` computes its output size with the output-size formula
`conv_output_size`, out = floor((n + p - d*(k-1) - 1) / s) + 1, and raises ValueError when the window does not
fit the padded input. Calling each layer's `compute_output_shape` in graph order for a candidate input therefore
says whether the model takes it, without building weights or running a batch.
"""

from __future__ import annotations

import keras


def output_shape_for(model: keras.Model, input_shape) -> tuple:
    """The output shape `model` would give for one input of `input_shape` (H, W, C).

    Runs `compute_output_shape` of every layer in graph order (a functional model lists its layers
    topologically), passing each layer the shapes its inputs got; merge layers such as `Add` check that their
    branches agree.

    Args:
        model: a functional `keras.Model` with one input.
        input_shape: (height, width, channels), without the batch axis.

    Returns:
        The output shape, batch axis included.

    Raises:
        ValueError: some layer cannot take the size that reaches it (e.g. a window larger than its padded
            input), with that layer's message.
    """
    shapes = {id(model.inputs[0]): (1, *input_shape)}
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        inputs = layer.input if isinstance(layer.input, (list, tuple)) else [layer.input]
        received = [shapes[id(tensor)] for tensor in inputs]
        shapes[id(layer.output)] = tuple(layer.compute_output_shape(received if len(received) > 1 else received[0]))
    return shapes[id(model.outputs[0])]


def takes(model: keras.Model, input_shape) -> bool:
    """True if `output_shape_for(model, input_shape)` succeeds."""
    try:
        output_shape_for(model, input_shape)
    except ValueError:
        return False
    return True


def smallest_input_size(model: keras.Model, limit: int = 4096) -> tuple[int, int]:
    """The smallest (height, width) `model` takes, each found with the other axis at the model's own size.

    Every layer's output size grows with its input size, so the first size that fits is the smallest.

    Args:
        model: a functional model built for a fixed size that it takes.
        limit: the largest size tried on each axis.

    Returns:
        (smallest height, smallest width).

    Raises:
        ValueError: the model was built for a variable size (None), or no size up to `limit` fits.

    Example:
        >>> from kerascnn.models import create, smallest_input_size
        >>> smallest_input_size(create("lenet5", (32, 32, 1)))
        (28, 28)
    """
    height, width, channels = model.inputs[0].shape[1:]
    if height is None or width is None:
        raise ValueError("smallest_input_size needs a model built for a fixed height and width.")
    smallest_height = next((h for h in range(1, limit + 1) if takes(model, (h, width, channels))), None)
    smallest_width = next((w for w in range(1, limit + 1) if takes(model, (height, w, channels))), None)
    if smallest_height is None or smallest_width is None:
        raise ValueError(f"Model {model.name!r} takes no input size up to {limit}.")
    return smallest_height, smallest_width
