"""Slow, obviously-right NumPy references written the way the CNN note writes the sums (d2l's corr2d,
pool2d). Used only as test oracles. Explicit padding here has PyTorch's meaning: zeros added on each
side before the window slides."""

import numpy as np


def corr2d(x, kernel, bias=None, strides=(1, 1), pads=((0, 0), (0, 0)), dilation=(1, 1), groups=1):
    """x: (N, H, W, C); kernel: (kh, kw, C/groups, F). Returns (N, OH, OW, F) in float64."""
    x = np.pad(np.asarray(x, np.float64), ((0, 0), *pads, (0, 0)))
    kernel = np.asarray(kernel, np.float64)
    kh, kw, cin_g, filters = kernel.shape
    (sh, sw), (dh, dw) = strides, dilation
    out_h = (x.shape[1] - dh * (kh - 1) - 1) // sh + 1
    out_w = (x.shape[2] - dw * (kw - 1) - 1) // sw + 1
    out = np.zeros((x.shape[0], out_h, out_w, filters))
    per_group = filters // groups
    for f in range(filters):
        g = f // per_group
        for i in range(out_h):
            for j in range(out_w):
                for a in range(kh):
                    for b in range(kw):
                        pixel = x[:, i * sh + a * dh, j * sw + b * dw, g * cin_g : (g + 1) * cin_g]
                        out[:, i, j, f] += pixel @ kernel[a, b, :, f]
    if bias is not None:
        out += np.asarray(bias, np.float64)
    return out


def pool2d(x, pool_size, strides, pads=((0, 0), (0, 0)), mode="max"):
    """Max or mean over each window of real cells; padded cells are ignored."""
    x = np.asarray(x, np.float64)
    n, h, w, c = x.shape
    (kh, kw), (sh, sw), ((pt, pb), (pl, pr)) = pool_size, strides, pads
    out_h = (h + pt + pb - kh) // sh + 1
    out_w = (w + pl + pr - kw) // sw + 1
    out = np.zeros((n, out_h, out_w, c))
    for i in range(out_h):
        for j in range(out_w):
            top, left = i * sh - pt, j * sw - pl
            window = x[:, max(top, 0) : min(top + kh, h), max(left, 0) : min(left + kw, w), :]
            reduce = np.max if mode == "max" else np.mean
            out[:, i, j, :] = reduce(window, axis=(1, 2))
    return out
