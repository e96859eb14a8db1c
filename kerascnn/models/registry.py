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
    """Decorator: registers `builder(input_shape, num_classes, **options) -> keras.Model` as `name`."""

    def decorator(builder):
        if name in _BUILDERS:
            raise ValueError(f"A model named {name!r} is already registered.")
        _BUILDERS[name] = builder
        return builder

    return decorator


def names() -> list[str]:
    """The registered model names, sorted."""
    return sorted(_BUILDERS)


def create(name: str, input_shape=(28, 28, 1), num_classes: int = 10, **options) -> keras.Model:
    """Builds the registered model `name` for images of `input_shape` (H, W, C) and `num_classes` classes.

    Height and width may be any size the model takes, or None for a variable size where the architecture
    allows it (models with a GAP head; not LeNet-5, whose dense layers need a fixed size).

    Raises:
        ValueError: unknown name (the message lists the valid ones and the closest match), an input shape
            that is not (H, W, C), fewer than 2 classes, an option the builder does not take, or a size too
            small for the model (the message names the smallest size it takes, found by
            `input_size.smallest_input_size`).

    Example:
        >>> create("resnet", (None, None, 3), 5).output_shape
        (None, 5)
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
