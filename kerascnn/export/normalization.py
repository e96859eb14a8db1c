"""One mean and one std for every input channel: per-channel normalization folded into the model.

A run trained on an RGB folder normalizes each channel with its own statistics, x_c = (p_c - m_c) / s_c on 0..255
pixels p. Two consumers of the exported model cannot express that:

- MediaPipe Tasks applies one mean and one std to all channels: NormalizationOptions whose values differ per
  channel fail with "Per-channel image normalization is not available".
- An integer input has one scale and zero point for all channels, so q = pixel (what MediaPipe and the TFLite Task
  Library feed a uint8 image model) cannot hold for three different s_c.

So the export gives such a model one shared normalization x'_c = (p_c - M) / S and absorbs the difference:

    x_c = (p_c - m_c) / s_c = a_c (x'_c + d_c),     a_c = S / s_c,     d_c = (M - m_c) / S.

M is the mean of the channel means rounded to a whole pixel value (then a uint8 input is q = p exactly: scale 1/S,
zero point M) and S the std of all pixel values pooled over the channels, sqrt(mean_c(s_c^2 + (m_c - mean m)^2)),
so x' has the spread the model was trained on. The scale a_c folds into the first convolution's kernel for free,
V'[a, b, c, :] = a_c V[a, b, c, :] (the convolution is linear in each input channel). The shift d_c is where the
borders matter:

- "bias": a first convolution without padding ("valid") reads image pixels only, so the shift adds the same
  sum_{a,b,c} V'[a, b, c, f] d_c to every output f: it folds into the bias. Exact, no op added.
- "shift": with zero padding ("same", explicit) the trained model read 0 at a padded tap, which is the pixel m_c;
  the shared input reads 0 there too, but that is the pixel M, and the bias fold would be off at the border
  outputs by the padded taps' sum_c V'[a, b, c, f] d_c (for channel means 20 levels apart and stds near 60,
  d_c ~ 0.3: a visible error on every border pixel of every image). So the shift stays an op: one ADD of the
  constant (d_1, ..., d_C) before the convolution, H W C additions against the convolution's H W C kh kw F
  multiply-adds. Exact everywhere. Every padded first convolution takes this route (most of the zoo's: ConvBNAct
  is "same"), and so does a "valid" one without a bias.
- "affine": a first layer that is not one ungrouped convolution cannot absorb a_c, so the model gets a MUL by a_c
  and an ADD of a_c d_c before its first layer. Exact.

A model whose channels already share one mean and std (grey, or an RGB input folded from grey with
`kerascnn.export.rgb`) is left as it is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kerascnn.export.rgb import NotFoldableError, first_conv


@dataclass(frozen=True)
class SharedNormalization:
    """A model that takes x' = (pixel - mean) / std with one mean and std for all channels.

    Attributes:
        model: the model to export (the given one when `fold` is None).
        mean, std: per channel (all equal), on 0..255 pixel values.
        fold: None (the channels shared one mean/std already), "bias", "shift" or "affine" (see the module
            docstring).
        trained_mean, trained_std: the run's per-channel statistics.
    """

    model: object
    mean: list[float]
    std: list[float]
    fold: str | None
    trained_mean: list[float]
    trained_std: list[float]

    def normalize(self, pixels: np.ndarray) -> np.ndarray:
        """(pixels - mean) / std in float32: the exported model's input."""
        return (np.asarray(pixels, np.float32) - np.float32(self.mean)) / np.float32(self.std)


def shared_statistics(mean, std) -> tuple[float, float]:
    """(M, S): the channel means' mean rounded to a whole pixel value and the std of all pixels pooled over the
    channels, sqrt(mean_c(s_c^2 + (m_c - mean m)^2)), rounded to 4 decimals."""
    mean, std = np.asarray(mean, np.float64), np.asarray(std, np.float64)
    pooled = np.sqrt(np.mean(std**2 + (mean - mean.mean()) ** 2))
    return float(np.round(mean.mean())), round(float(pooled), 4)


def _channel_affine(scale, shift, name: str):
    """A layer y = x * scale + shift, one constant per channel (TFLite: MUL then ADD; a scale of ones: ADD only)."""
    import keras

    scale, shift = np.float32(scale), np.float32(shift)

    class ChannelAffine(keras.layers.Layer):
        def call(self, inputs):
            if not np.all(scale == 1):
                inputs = keras.ops.multiply(inputs, scale)
            return keras.ops.add(inputs, shift)

    return ChannelAffine(name=name)


def _zero_padding(conv, spatial_shape) -> bool:
    from kerascnn.layers.padding import explicit_padding, normalize_padding

    padding = explicit_padding(
        normalize_padding(conv.padding), spatial_shape, conv.kernel_size, conv.strides, conv.dilation_rate
    )
    return padding == ((0, 0), (0, 0))


def share_normalization(model, mean, std) -> SharedNormalization:
    """`model` (trained on (pixel - mean_c) / std_c) rebuilt to take one mean and std for all channels.

    Args:
        model: a functional Keras model with one image input (H, W, C).
        mean, std: the run's normalization, 1 or C numbers each (pixel units).

    Returns:
        A SharedNormalization: for any pixels p, `result.model(result.normalize(p))` equals
        `model((p - mean) / std)` (up to float rounding), at the borders too; the added ops are none ("bias"),
        one ADD ("shift") or a MUL and an ADD ("affine"), see the module docstring.

    Raises:
        ValueError: the model has not one input of rank 4, or mean/std have a length other than 1 or C.

    Example:
        shared = share_normalization(model, [121.8, 121.3, 112.0], [33.5, 30.9, 30.7])
        shared.mean, shared.std, shared.fold   # [118.0] * 3, [32.0...] * 3, "shift"
    """
    import keras

    if len(getattr(model, "inputs", None) or []) != 1 or len(model.inputs[0].shape) != 4:
        raise ValueError("The normalization fold takes a model with one image input (H, W, C).")
    shape = tuple(model.inputs[0].shape[1:])
    channels = shape[-1]
    trained_mean, trained_std = ([float(v) for v in values] for values in (mean, std))
    if {len(trained_mean), len(trained_std)} - {1, channels}:
        raise ValueError(
            f"The normalization needs 1 or {channels} means and stds. Received: mean={mean!r}, std={std!r}."
        )
    trained_mean, trained_std = (v * channels if len(v) == 1 else v for v in (trained_mean, trained_std))
    if len(set(trained_mean)) == 1 and len(set(trained_std)) == 1:
        return SharedNormalization(model, trained_mean, trained_std, None, trained_mean, trained_std)
    shared_mean, shared_std = shared_statistics(trained_mean, trained_std)
    scale = shared_std / np.asarray(trained_std, np.float64)  # a_c
    shift = (shared_mean - np.asarray(trained_mean, np.float64)) / shared_std  # d_c
    try:
        input_name, _, conv = first_conv(model)
    except NotFoldableError:
        input_name = next(layer.name for layer in model.layers if isinstance(layer, keras.layers.InputLayer))
        conv = None
    if conv is None:
        fold = "affine"
    elif _zero_padding(conv, shape[:2]) and getattr(conv, "use_bias", False):
        fold = "bias"
    else:
        fold = "shift"

    new_input = keras.Input(shape, name=input_name)
    pre = {}

    def call(layer, *args, **kwargs):
        """Calls each cloned layer; the model's input reaches its consumers through the shift/affine layer."""
        if fold != "bias":

            def swap(tensor):
                if tensor is new_input:
                    if "layer" not in pre:
                        pre["layer"] = _channel_affine(
                            scale if fold == "affine" else np.ones(channels),
                            scale * shift if fold == "affine" else shift,
                            name=f"{input_name}_normalization",
                        )(new_input)
                    return pre["layer"]
                return tensor

            args = keras.tree.map_structure(swap, args)
        return layer(*args, **kwargs)

    shared = keras.models.clone_model(model, input_tensors=new_input, call_function=call)
    for source in model.layers:
        target = shared.get_layer(source.name)
        for target_weight, source_weight in zip(target.weights, source.weights, strict=True):
            value = np.asarray(source_weight)
            if conv is not None and source_weight is conv.kernel:
                value = value * scale[None, None, :, None]  # V' = a_c V
            if fold == "bias" and source_weight is conv.bias:  # u' = u + sum_{a,b,c} V'[a, b, c, :] d_c
                value = value + np.einsum("abcf,c->f", np.asarray(conv.kernel) * scale[None, None, :, None], shift)
            target_weight.assign(value.astype(np.asarray(source_weight).dtype))
    return SharedNormalization(
        shared, [shared_mean] * channels, [shared_std] * channels, fold, trained_mean, trained_std
    )
