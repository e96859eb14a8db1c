"""A folder of the user's own images: one sub-folder per class, read with Pillow."""

from __future__ import annotations

from pathlib import Path

import numpy as np

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"}
BACKGROUND = (255, 255, 255)  # transparent pixels become white, as an image viewer on a white page shows them
_SIXTEEN_BIT_MODES = {"I;16", "I;16B", "I;16L", "I;16N", "I"}


def to_8bit(image):
    """`image` as an 8-bit Pillow image of mode "L" (greyscale) or "RGB".

    16-bit greyscale (modes I;16 and I, as Pillow reads 16-bit PNGs) is scaled, not clipped:
    p8 = round(p16 * 255 / 65535). Transparency (RGBA, LA, a palette or greyscale image with a transparent
    colour) is composited over `BACKGROUND`: p = alpha * p + (1 - alpha) * background. Palette images become
    RGB; every other mode goes through Pillow's `convert`.
    """
    from PIL import Image

    if image.mode in _SIXTEEN_BIT_MODES:
        pixels = np.asarray(image).astype(np.float64)
        return Image.fromarray(np.round(np.clip(pixels, 0, 65535) * 255 / 65535).astype(np.uint8), "L")
    grey = image.mode in ("1", "L", "LA") or (image.mode == "P" and image.palette.mode == "L")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
        background = Image.new("RGBA", image.size, (*BACKGROUND, 255))
        image = Image.alpha_composite(background, image.convert("RGBA"))
    return image.convert("L" if grey else "RGB")


def read_image_folder(root: str | Path, image_size: tuple[int, int] | None = None, channels: int | None = None):
    """Images under root/<class name>/*.{png,jpg,...} as (uint8 images (N, H, W, C), int64 labels, class names).

    Class names are the sub-folder names, sorted; labels index them. Every image is resized to
    `image_size` (H, W) — by default the size of the first image — and converted to `channels` (1 or 3;
    by default 1 if every image is greyscale, else 3). 16-bit images are scaled to 8 bits and transparent
    pixels composited over white (`to_8bit`).

    Raises:
        FileNotFoundError: `root` does not exist.
        ValueError: no class folders or no images, or an image that cannot be decoded or is larger than
            Pillow's decompression-bomb limit (named).
    """
    from PIL import Image, UnidentifiedImageError

    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"Image folder {root} does not exist. Expected {root}/<class name>/<image files>.")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    files = [
        (f, label)
        for label, name in enumerate(classes)
        for f in sorted((root / name).iterdir())
        if f.suffix.lower() in IMAGE_SUFFIXES
    ]
    if len(classes) < 2 or not files:
        raise ValueError(
            f"{root} must hold one sub-folder per class (at least 2) with image files "
            f"({', '.join(sorted(IMAGE_SUFFIXES))}); found {len(classes)} folders and {len(files)} "
            "images."
        )
    pictures = []
    for path, _ in files:
        try:
            with Image.open(path) as image:
                image.load()
                pictures.append(to_8bit(image))
        except Image.DecompressionBombError as error:
            raise ValueError(
                f"Image {path} has more pixels than Pillow opens safely ({error}). Shrink the file, "
                "or remove it from the folder."
            ) from error
        except (UnidentifiedImageError, OSError) as error:
            raise ValueError(f"Cannot decode image {path}: {error}. Remove or replace the file.") from error
    if channels is None:
        channels = 1 if all(p.mode == "L" for p in pictures) else 3
    if channels not in (1, 3):
        raise ValueError(f"`channels` must be 1 or 3. Received: channels={channels!r}")
    height, width = image_size or (pictures[0].height, pictures[0].width)
    mode = "L" if channels == 1 else "RGB"
    images = np.stack(
        [
            np.asarray(p.convert(mode).resize((width, height), Image.BILINEAR), np.uint8).reshape(
                height, width, channels
            )
            for p in pictures
        ]
    )
    labels = np.array([label for _, label in files], np.int64)
    return images, labels, classes
