"""Decoding, orientation and resizing of one image, in the tf.data graph: what training, export's evaluation and
calibration do to every file. `kerascnn-predict` (Pillow) and the browser page (`export/web/classify.js`) do the
same steps; tests/data/test_images.py holds them equal.

    bytes -> decode (JPEG with libjpeg's accurate integer IDCT, as Pillow; 16-bit PNG scaled to 8 bits)
          -> EXIF orientation (the tag read by Pillow when the folder is listed, applied here as Pillow's
             `ImageOps.exif_transpose` applies it)
          -> transparency over white, grey <-> RGB as Pillow's convert("L") / convert("RGB")
          -> resize: antialiased bilinear (a triangle filter widened by the scale when shrinking, plain bilinear
             when enlarging), rounded to uint8: `tf.image.resize(..., "bilinear", antialias=True)`, which is
             Pillow's `Image.BILINEAR` to within one grey level.

Why the orientation is read at listing time and not here: TensorFlow's decoders ignore EXIF, and reading the tag
inside the graph would need either a hand-written EXIF parser in string ops or `tf.py_function` (Python under
the GIL, which serializes the parallel decoding). The folder reader opens every file's header with Pillow anyway
(`kerascnn.data.folder.check_image_file`), so the tag costs nothing there and comes from the same code predict.py
uses.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"}
ORIENTATION_TAG = 0x0112  # EXIF Orientation, 1..8; 1 (and a missing tag) is upright
BACKGROUND = 255  # transparent pixels become white, as an image viewer on a white page shows them
# Pillow's convert("L"): L = (19595 R + 38470 G + 7471 B + 2^15) >> 16, i.e. 0.299 R + 0.587 G + 0.114 B rounded
LUMA_WEIGHTS = (19595, 38470, 7471)


def orient(image, orientation):
    """`image` (H, W, C) turned upright as EXIF `orientation` (an int tensor 1..8) says, as Pillow's
    `ImageOps.exif_transpose`: 2 mirror left-right, 3 rotate 180, 4 mirror top-bottom, 5 transpose, 6 rotate 90
    clockwise, 7 transverse, 8 rotate 90 counter-clockwise; other values leave it unchanged.

    Each is a transpose (5..8) followed by mirrors: left-right for 2, 3, 6, 7 and top-bottom for 3, 4, 7, 8 (for 6:
    out[i, j] = in[H - 1 - j, i], the transpose mirrored left-right). Written as one `tf.transpose` and one
    `tf.reverse` with computed axes, not as branches, which tf.data would trace and run far more slowly.
    """
    import tensorflow as tf

    o = tf.cast(orientation, tf.int32)
    o = tf.where((o >= 1) & (o <= 8), o, 1)
    transposed = tf.transpose(image, tf.where(o >= 5, [1, 0, 2], [0, 1, 2]))
    flip_lr = tf.reduce_any(o == [2, 3, 6, 7])
    flip_ud = tf.reduce_any(o == [3, 4, 7, 8])
    axes = tf.boolean_mask(tf.constant([0, 1]), tf.stack([flip_ud, flip_lr]))
    turned = tf.reverse(transposed, axes)
    turned.set_shape((None, None, image.shape[-1]))
    return turned


def decode(contents, channels: int, orientation=1):
    """Encoded JPEG/PNG/GIF (first frame)/BMP/WebP bytes -> uint8 (H, W, `channels`), upright.

    JPEG (and MPO, a JPEG with more frames after the first) is decoded with libjpeg's accurate integer IDCT,
    which gives Pillow's pixels exactly (TensorFlow's default fast IDCT differs by up to 4 levels). A 16-bit PNG
    (bit-depth byte 24 is 16) is decoded as uint16 and scaled, not clipped: round(v * 255 / 65535) = round(v / 257).
    Transparency is composited over white: p = a * p + (1 - a) * 255 with a = alpha / 255. Grey becomes RGB by
    repeating it; RGB becomes grey as Pillow's "L" (`LUMA_WEIGHTS`, integer arithmetic).
    """
    import tensorflow as tf

    head = tf.strings.substr(contents, 0, 8)
    deep_png = tf.logical_and(head == b"\x89PNG\r\n\x1a\n", tf.strings.substr(contents, 24, 1) == b"\x10")
    jpeg = tf.strings.substr(contents, 0, 2) == b"\xff\xd8"

    def sixteen_bit():
        wide = tf.cast(tf.io.decode_png(contents, channels=0, dtype=tf.uint16), tf.float32)
        return tf.cast(tf.round(wide / 257.0), tf.uint8)

    def jpeg_pixels():
        return tf.io.decode_jpeg(contents, channels=0, dct_method="INTEGER_ACCURATE")

    def other():
        return tf.io.decode_image(contents, channels=0, expand_animations=False)

    image = tf.case([(deep_png, sixteen_bit), (jpeg, jpeg_pixels)], default=other, exclusive=True)
    image.set_shape((None, None, None))
    image = orient(image, orientation)
    image.set_shape((None, None, None))
    converted = tf.cond(tf.shape(image)[-1] == channels, lambda: image, lambda: convert_channels(image, channels))
    converted.set_shape((None, None, channels))
    return converted


def convert_channels(image, channels: int):
    """uint8 (H, W, 1..4) -> uint8 (H, W, channels): alpha composited over white, then grey <-> RGB (as Pillow)."""
    import tensorflow as tf

    x = tf.cast(image, tf.float32)

    def composite():
        alpha = x[..., -1:] / 255.0
        return tf.round(x[..., :-1] * alpha + BACKGROUND * (1.0 - alpha))

    x = tf.cond(tf.shape(x)[-1] % 2 == 0, composite, lambda: x)  # 2: grey + alpha, 4: RGB + alpha
    if channels == 3:
        x = tf.cond(tf.shape(x)[-1] == 1, lambda: tf.tile(x, (1, 1, 3)), lambda: x)
    else:

        def luma():
            rgb = tf.cast(x, tf.int32)
            weighted = tf.reduce_sum(rgb * tf.constant(LUMA_WEIGHTS, tf.int32), -1, keepdims=True)
            return tf.cast(tf.bitwise.right_shift(weighted + (1 << 15), 16), tf.float32)

        x = tf.cond(tf.shape(x)[-1] == 3, luma, lambda: x)
    return tf.cast(tf.clip_by_value(x, 0, 255), tf.uint8)


def resize(image, image_size: tuple[int, int]):
    """uint8 (h, w, C) -> uint8 (height, width, C): antialiased bilinear, rounded. An image already of that size
    comes back unchanged (the filter is then the identity)."""
    import tensorflow as tf

    height, width = image_size
    channels = image.shape[-1]
    same = tf.reduce_all(tf.shape(image)[:2] == (height, width))

    def resized():
        x = tf.image.resize(image, (height, width), method="bilinear", antialias=True)
        return tf.cast(tf.clip_by_value(tf.round(x), 0, 255), tf.uint8)

    out = tf.cond(same, lambda: image, resized)
    out.set_shape((height, width, channels))
    return out


@functools.lru_cache(maxsize=32)
def decode_file_fn(image_size: tuple[int, int], channels: int) -> Callable:
    """The tf.data map (path, label, orientation) -> (uint8 image of `image_size` and `channels`, label).

    One `tf.function` per (size, channels), traced once per process: every pipeline that maps it (each split,
    the statistics, every epoch) calls the same graph instead of tracing the decoding again.
    """
    import tensorflow as tf

    spec = (tf.TensorSpec((), tf.string), tf.TensorSpec((), tf.int64), tf.TensorSpec((), tf.int64))

    @tf.function(input_signature=spec, autograph=False)  # plain TF ops: nothing for autograph to convert
    def decode_file(path, label, orientation):
        image = decode(tf.io.read_file(path), channels, orientation)
        return resize(image, image_size), label

    return decode_file


def batch_bytes(input_shape, batch_size: int) -> int:
    """Bytes of one float32 batch of `batch_size` images of `input_shape` (H, W, C): what the model's input holds."""
    height, width, channels = input_shape
    return 4 * batch_size * height * width * channels


def physical_memory_bytes() -> int | None:
    """This machine's RAM in bytes, or None where the OS does not say."""
    import os

    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def check_memory(input_shape, batch_size: int) -> None:
    """Raises ValueError naming --image-size when one float32 batch takes more than half of this machine's memory
    (the model's activations need several times more): a size typed by mistake fails at once, with the figure,
    instead of in an allocation deep inside TensorFlow."""
    memory = physical_memory_bytes()
    needed = batch_bytes(input_shape, batch_size)
    if memory is not None and needed > memory / 2:
        height, width, channels = input_shape
        raise ValueError(
            f"--image-size {height} {width}: one batch of {batch_size} images of {height}x{width}x{channels} "
            f"needs {needed / 1e9:.1f} GB as float32 (and the model several times more), over half of this "
            f"machine's {memory / 1e9:.1f} GB. Choose a smaller --image-size (or --batch-size)."
        )
