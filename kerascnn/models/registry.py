"""The model registry: `register` a builder under a name, `create` a model by name, list `names()`."""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable

import keras

_BUILDERS: dict[str, Callable[..., keras.Model]] = {}


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

    Raises:
        ValueError: unknown name (the message lists the valid ones and the closest match), an input shape
            that is not (H, W, C), fewer than 2 classes, or an option the builder does not take.
    """
    if name not in _BUILDERS:
        close = difflib.get_close_matches(name, names(), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"Unknown model {name!r}.{hint} Valid names: {', '.join(names())}.")
    input_shape = tuple(input_shape)
    if len(input_shape) != 3 or not all(isinstance(v, int) and v > 0 for v in input_shape):
        raise ValueError(f"`input_shape` must be (height, width, channels). Received: input_shape={input_shape!r}")
    if not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"`num_classes` must be an int >= 2. Received: num_classes={num_classes!r}")
    builder = _BUILDERS[name]
    accepted = [p for p in inspect.signature(builder).parameters if p not in ("input_shape", "num_classes")]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ValueError(f"Model {name!r} has no option {', '.join(map(repr, unknown))}. "
                         f"Its options: {', '.join(accepted) or 'none'}.")
    try:
        return builder(input_shape=input_shape, num_classes=num_classes, **options)
    except ValueError as error:
        raise ValueError(f"Cannot build model {name!r} for input_shape={input_shape}: {error}") from error

