"""Padding forms and the output-size formula shared by every windowed layer.

A window of size k with dilation d spans d*(k-1) + 1 input cells. Sliding it with stride s over an axis
of n cells padded with p cells in total gives

    out = floor((n + p - d*(k-1) - 1) / s) + 1

positions, which for d = 1 is the CNN note's floor((n - k + p + s) / s). Every layer in
`kerascnn.layers` computes its output shape with `conv_output_size` and nothing else.
"""

from __future__ import annotations

import numbers


def is_int(value) -> bool:
    """True for Python and NumPy integers, False for bools."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


PADDING_FORMS = '"valid", "same", an int p (p on every side), a pair (ph, pw), or ((top, bottom), (left, right))'


def conv_output_size(n: int | None, k: int, p: int, s: int, d: int = 1) -> int | None:
    """Number of window positions along one axis: floor((n + p - d*(k-1) - 1) / s) + 1.

    Args:
        n: input size on that axis, or None when unknown (then None is returned).
        k: window (kernel or pool) size, >= 1.
        p: total padding on that axis (both sides together), >= 0.
        s: stride, >= 1.
        d: dilation, >= 1.

    Returns:
        The output size, at least 1.

    Raises:
        ValueError: `k`, `p`, `s` or `d` is not an int in range, or the dilated window d*(k-1) + 1 is larger
            than the padded input n + p.

    Example:
        >>> from kerascnn.layers import conv_output_size
        >>> conv_output_size(28, 5, 0, 1)  # LeNet's first convolution: floor((28 + 0 - 5) / 1) + 1
        24
        >>> conv_output_size(28, 3, 2, 2)  # 3x3, one cell of padding each side, stride 2: floor(27 / 2) + 1
        14
        >>> conv_output_size(28, 3, 0, 1, d=2)  # dilation 2 spans 5 cells
        24
        >>> conv_output_size(None, 3, 0, 1) is None
        True
        >>> conv_output_size(2, 5, 0, 1)
        Traceback (most recent call last):
        ...
        ValueError: The window does not fit: a window of 5 cells (kernel 5, dilation 1) is larger than ...
    """
    for name, value, low in (("k", k, 1), ("p", p, 0), ("s", s, 1), ("d", d, 1)):
        if not is_int(value) or value < low:
            raise ValueError(f"conv_output_size: `{name}` must be an int >= {low}. Received: {name}={value!r}")
    if n is None:
        return None
    span = d * (k - 1) + 1
    if n + p < span:
        raise ValueError(
            f"The window does not fit: a window of {span} cells (kernel {k}, dilation {d}) is larger than "
            f"the padded input of {n} + {p} = {n + p} cells. Use a larger input, more padding or a smaller "
            "kernel."
        )
    return (n + p - span) // s + 1


def normalize_tuple(value, name: str, low: int = 1) -> tuple[int, int]:
    """An int or a pair of ints, each >= `low`, as a pair. Raises ValueError naming `name`."""
    pair = (value, value) if is_int(value) else value
    try:
        pair = tuple(pair)
    except TypeError:
        pair = ()
    if len(pair) != 2 or not all(is_int(v) and v >= low for v in pair):
        raise ValueError(f"`{name}` must be an int or a pair of ints, each >= {low}. Received: {name}={value!r}")
    return tuple(int(v) for v in pair)


def normalize_padding(padding):
    """Returns "valid", "same", or explicit padding ((top, bottom), (left, right)) of ints >= 0."""
    if isinstance(padding, str):
        if padding.lower() in ("valid", "same"):
            return padding.lower()
        raise ValueError(f"`padding` must be {PADDING_FORMS}. Received: padding={padding!r}")
    if is_int(padding):
        pads = ((padding, padding), (padding, padding))
    else:
        try:
            items = tuple(padding)
            if len(items) == 2 and all(is_int(v) for v in items):
                pads = ((items[0], items[0]), (items[1], items[1]))
            elif len(items) == 2:
                pads = tuple(tuple(pair) for pair in items)
            else:
                pads = None
        except TypeError:
            pads = None
        if pads is None or any(len(pair) != 2 for pair in pads) or not all(is_int(v) for pair in pads for v in pair):
            raise ValueError(f"`padding` must be {PADDING_FORMS}. Received: padding={padding!r}")
    if any(v < 0 for pair in pads for v in pair):
        raise ValueError(f"`padding` must not be negative. Received: padding={padding!r}")
    return tuple((int(a), int(b)) for a, b in pads)


def same_padding(n: int, k: int, s: int, d: int = 1) -> tuple[int, int]:
    """The (before, after) padding that "same" applies: enough for ceil(n / s) outputs, the odd cell after.

    This is TensorFlow's (and TFLite's) rule: total = max((ceil(n/s) - 1)*s + d*(k-1) + 1 - n, 0).
    """
    out = -(-n // s)
    total = max((out - 1) * s + d * (k - 1) + 1 - n, 0)
    return total // 2, total - total // 2


def explicit_padding(padding, spatial_shape, kernel_size, strides, dilation_rate=(1, 1)):
    """Padding ((top, bottom), (left, right)) that `padding` applies to an input of `spatial_shape`.

    "valid" is zero padding and "same" is `same_padding`. An axis whose amount depends on an unknown
    (None) size gets None instead of a pair; that happens only for "same" with a stride > 1 (with
    stride 1, "same" pads d*(k-1) in total whatever n is).
    """
    if padding == "valid":
        return ((0, 0), (0, 0))
    if padding != "same":
        return padding
    return tuple(
        None if n is None and s > 1 else same_padding(1 if n is None else n, k, s, d)
        for n, k, s, d in zip(spatial_shape, kernel_size, strides, dilation_rate)
    )


def resolve_padding(padding, spatial_shape, kernel_size, strides, dilation_rate=(1, 1)):
    """Splits `padding` into (mode, pads) for an input of `spatial_shape`.

    mode is "valid" or "same", as the backend op takes it; pads is the explicit padding to apply first,
    or None. Explicit padding that equals what "valid" or "same" would do is replaced by that mode, so
    the TFLite graph has a single CONV_2D / pooling op and no PAD.
    """
    if isinstance(padding, str):
        return padding, None
    if padding == ((0, 0), (0, 0)):
        return "valid", None
    if padding == explicit_padding("same", spatial_shape, kernel_size, strides, dilation_rate):
        return "same", None
    return "valid", padding


def output_spatial_shape(padding, spatial_shape, kernel_size, strides, dilation_rate=(1, 1)):
    """(height, width) after a window layer, each from `conv_output_size`; None where unknown."""
    pads = explicit_padding(padding, spatial_shape, kernel_size, strides, dilation_rate)
    return tuple(
        None if pad is None else conv_output_size(n, k, pad[0] + pad[1], s, d)
        for n, k, s, d, pad in zip(spatial_shape, kernel_size, strides, dilation_rate, pads)
    )


def check_image_shape(layer_name: str, input_shape) -> None:
    """Raises ValueError unless `input_shape` is 4-D: (batch, height, width, channels)."""
    if len(input_shape) != 4:
        raise ValueError(
            f"{layer_name} expects 4-D input (batch, height, width, channels), channels last. "
            f"Received input with shape {tuple(input_shape)}. Add a channel axis to greyscale images "
            "(e.g. x[..., None]) and a batch axis to single images."
        )
