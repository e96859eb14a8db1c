"""The model registry: `register` a builder under a name, `create` a model by name, list `names()`."""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable

import keras

_BUILDERS: dict[str, Callable[..., keras.Model]] = {}


class OptionError(ValueError):
    """A builder option that is wrong at every input size (a weights file that does not fit, alpha <= 0):
    `create` passes it on as it is, without probing larger sizes for the smallest one the model takes."""


def register(name: str):
    """Decorator: registers `builder(input_shape, num_classes, **options) -> keras.Model` as `name`.

    `create(name, ...)` then checks the shape, the class count and the option names, and calls the builder with
    `input_shape=(H, W, C)`, `num_classes` and the options as keywords. A builder raises ValueError for a size it
    cannot take (`create` then finds the smallest size that fits) and `OptionError` for an option wrong at every
    size.

    Args:
        name: the name `create` and `names()` use; the `--model` value on the command line.

    Returns:
        The decorator, which registers the builder and returns it unchanged.

    Raises:
        ValueError: (from the decorator) a model named `name` is already registered.

    Example:
        >>> import keras
        >>> from kerascnn.layers import GAPHead
        >>> from kerascnn.models import create, register
        >>> @register("tiny_doc_example")
        ... def tiny(input_shape, num_classes, dropout=0.0):
        ...     inputs = keras.Input(input_shape)
        ...     return keras.Model(inputs, GAPHead(num_classes, dropout=dropout)(inputs))
        >>> create("tiny_doc_example", (8, 8, 3), 4).count_params()  # 3 * 4 weights + 4 biases
        16
        >>> from kerascnn.models import registry
        >>> del registry._BUILDERS["tiny_doc_example"]  # unregister the example: tests build every name
        >>> register("resnet")(tiny)
        Traceback (most recent call last):
        ...
        ValueError: A model named 'resnet' is already registered.
    """

    def decorator(builder):
        if name in _BUILDERS:
            raise ValueError(f"A model named {name!r} is already registered.")
        _BUILDERS[name] = builder
        return builder

    return decorator


def names() -> list[str]:
    """The registered model names, sorted.

    Returns:
        The names `create` accepts, a new list (changing it registers nothing).

    Example:
        >>> from kerascnn.models import names
        >>> names()
        ['lenet5', 'mobilenet', 'mobilenetv2', 'nin', 'resnet', 'vgg']
    """
    return sorted(_BUILDERS)


def create(name: str, input_shape=(28, 28, 1), num_classes: int = 10, **options) -> keras.Model:
    """Builds the registered model `name` for images of `input_shape` (H, W, C) and `num_classes` classes.

    Height and width may be any size the model takes, or None for a variable size where the architecture
    allows it (models with a GAP head; not LeNet-5, whose dense layers need a fixed size).

    Args:
        name: a registered name, one of `names()`: "lenet5", "mobilenet", "mobilenetv2", "nin", "resnet", "vgg".
        input_shape: (height, width, channels), without the batch axis; height and width are positive ints or
            None, channels an int >= 1.
        num_classes: number of classes, an int >= 2; the model outputs (batch, num_classes) probabilities.
        **options: the builder's own keyword options (e.g. `widths` and `dropout` for "vgg", `width` and
            `depth` for "resnet", `alpha` and `weights` for "mobilenetv2"); the ValueError for an unknown one
            lists them.

    Returns:
        A functional `keras.Model` (not compiled) from (batch, H, W, C) images to (batch, num_classes).

    Raises:
        ValueError: unknown name (the message lists the valid ones and the closest match), an input shape
            that is not (H, W, C), fewer than 2 classes, an option the builder does not take, or a size too
            small for the model (the message names the smallest size it takes, found by
            `input_size.smallest_input_size`).

    Example:
        >>> from kerascnn.models import create
        >>> create("resnet", (None, None, 3), 5).output_shape
        (None, 5)
        >>> create("vgg", (32, 32, 3), 10, widths=(8, 16)).count_params()
        4610
        >>> create("lenet5", (8, 8, 1))
        Traceback (most recent call last):
        ...
        ValueError: Model 'lenet5' takes images of at least 28x28 pixels; input_shape=(8, 8, 1) is too small ...
    """
    if name not in _BUILDERS:
        close = difflib.get_close_matches(name, names(), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"Unknown model {name!r}.{hint} Valid names: {', '.join(names())}.")
    input_shape = tuple(input_shape)
    if (
        len(input_shape) != 3
        or not all(v is None or isinstance(v, int) and v > 0 for v in input_shape[:2])
        or not isinstance(input_shape[2], int)
        or input_shape[2] < 1
    ):
        raise ValueError(
            "`input_shape` must be (height, width, channels): positive ints, height and width may be "
            f"None for a variable size. Received: input_shape={input_shape!r}"
        )
    if not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"`num_classes` must be an int >= 2. Received: num_classes={num_classes!r}")
    builder = _BUILDERS[name]
    accepted = [p for p in inspect.signature(builder).parameters if p not in ("input_shape", "num_classes")]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ValueError(
            f"Model {name!r} has no option {', '.join(map(repr, unknown))}. "
            f"Its options: {', '.join(accepted) or 'none'}."
        )
    try:
        return builder(input_shape=input_shape, num_classes=num_classes, **options)
    except OptionError:
        raise
    except ValueError as error:
        smallest = _smallest_size(builder, input_shape, num_classes, options)
        if smallest is not None:
            raise ValueError(
                f"Model {name!r} takes images of at least {smallest[0]}x{smallest[1]} pixels; "
                f"input_shape={input_shape} is too small ({error}). Resize the images to at least that size "
                "(--image-size H W) or pick a model that takes smaller images."
            ) from error
        raise ValueError(f"Cannot build model {name!r} for input_shape={input_shape}: {error}") from error


def _smallest_size(builder, input_shape, num_classes, options) -> tuple[int, int] | None:
    """The smallest (H, W) the model takes, if it builds at some larger fixed size; else None."""
    from kerascnn.models.input_size import smallest_input_size, takes

    height, width, channels = input_shape
    if height is None or width is None:
        return None
    size = 2 * max(height, width)
    while size <= 4096:
        try:
            probe = builder(input_shape=(size, size, channels), num_classes=num_classes, **options)
        except ValueError:
            size *= 2
            continue
        if takes(probe, input_shape):  # failed for another reason than its size
            return None
        return smallest_input_size(probe)
    return None
