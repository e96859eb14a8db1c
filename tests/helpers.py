"""Small helpers shared by the tests."""

import contextlib
import fcntl
import pickle
import re

import numpy as np
import pytest

from kerascnn import cli


def random_images(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype("float32")


def copy_weights(source, target):
    """Gives `target` the weights of `source` (same shapes, same order)."""
    target.set_weights(source.get_weights())


def perturb_batch_norms(model, seed=0):
    """Gives every batch norm's gamma, beta, moving mean and moving variance random values per channel (what
    training would move them to, without compiling a training step), so that a BN fold or a copied BN that gets
    one of them wrong or misses a channel shows in the outputs. Returns the model."""
    rng = np.random.default_rng(seed)
    draw = {
        "gamma": lambda shape: rng.uniform(0.5, 1.5, shape),
        "beta": lambda shape: rng.normal(0.0, 0.2, shape),
        "moving_mean": lambda shape: rng.normal(0.0, 0.2, shape),
        "moving_variance": lambda shape: rng.uniform(0.5, 1.5, shape),
    }
    for variable in model.weights:
        name = variable.path.rsplit("/", 1)[-1]
        if name in draw:
            variable.assign(draw[name](variable.shape).astype("float32"))
    return model


def assert_close(actual, expected, atol=1e-5):
    """assert_allclose for tensors of any backend (converted to NumPy first)."""
    import keras

    np.testing.assert_allclose(keras.ops.convert_to_numpy(actual), keras.ops.convert_to_numpy(expected), atol=atol)


@contextlib.contextmanager
def exclusive(lock_path):
    """Holds an exclusive lock on the file `lock_path` while the block runs (pytest -n workers take turns)."""
    with open(lock_path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def once_per_session(request, name, build):
    """`build(root)` for a session fixture, run once per pytest session even under pytest-xdist: the first worker
    builds in a folder all workers share and pickles the result; the others wait on its lock and load that.
    `root` is an empty folder that lives as long as the session's temporary files."""
    base = request.getfixturevalue("tmp_path_factory").getbasetemp()
    if hasattr(request.config, "workerinput"):  # a pytest-xdist worker
        base = base.parent  # each worker's basetemp is <session basetemp>/popen-gwN
    root, value = base / name, base / f"{name}.pickle"
    with exclusive(base / f"{name}.lock"):
        if value.exists():
            return pickle.loads(value.read_bytes())
        root.mkdir()
        result = build(root)
        value.write_bytes(pickle.dumps(result))
        return result


def copy_run(run_dir, root):
    """A copy of the run directory `run_dir` as `root / "run"` (shared runs stay unchanged)."""
    import shutil

    shutil.copytree(run_dir, root / "run")
    return root / "run"


# EXIF orientation -> the Pillow transpose that stores an upright picture so that `ImageOps.exif_transpose` (and
# every viewer) shows it upright again: the inverse of the one exif_transpose applies
_STORE_ROTATED = {3: "ROTATE_180", 6: "ROTATE_90", 8: "ROTATE_270"}


def photo(size, label, seed=0):
    """A photo-like upright RGB picture (height, width, 3) uint8: smooth colour gradients, sensor noise and, for
    `label` 0, a bright horizontal bar, for 1 a vertical one (a 90-degree rotation confuses the classes), for 2 a
    bright disc."""
    rng = np.random.default_rng(seed)
    height, width = size
    yy, xx = np.ogrid[0:height, 0:width]  # open grids: the broadcasts below cost one image each, not two
    yy, xx = yy / max(size), xx / max(size)
    phase = rng.uniform(0, 6, 3)
    pixels = np.stack([100 + 60 * np.sin(5 * xx + phase[c]) * np.cos(4 * yy - phase[c]) for c in range(3)], -1)
    pixels += rng.normal(0, 8, pixels.shape)
    cy, cx = rng.uniform(0.35, 0.65, 2) * (height, width)
    half = 0.06 * min(size)
    if label == 0:
        pixels[int(cy - half) : int(cy + half), int(0.1 * width) : int(0.9 * width)] = (235, 220, 60)
    elif label == 1:
        pixels[int(0.1 * height) : int(0.9 * height), int(cx - half) : int(cx + half)] = (235, 220, 60)
    else:
        pixels[
            (np.ogrid[0:height, 0:width][0] - cy) ** 2 + (np.ogrid[0:height, 0:width][1] - cx) ** 2 < 9 * half**2
        ] = (
            60,
            200,
            235,
        )
    return np.clip(pixels, 0, 255).astype(np.uint8)


def save_photo(path, upright, orientation=1, quality=90):
    """Saves `upright` as a JPEG stored as a phone stores it: rotated, with EXIF orientation tag 0x0112 =
    `orientation` (1, 3, 6 or 8) saying how to turn it back. Returns the path."""
    from PIL import Image

    image = Image.fromarray(upright)
    exif = Image.Exif()
    if orientation != 1:
        image = image.transpose(getattr(Image.Transpose, _STORE_ROTATED[orientation]))
    exif[0x0112] = orientation
    image.save(path, "JPEG", quality=quality, exif=exif)
    return path


def make_photo_folder(
    root,
    classes=("horizontal", "vertical", "disc"),
    per_class=6,
    sizes=((480, 640), (640, 480)),
    orientations=(6, 8, 3, 1),
    nested_every=3,
    seed=0,
):
    """A folder of phone-like photos, root/<class>/[sub/]<i>.jpg: RGB JPEGs of the upright `sizes` (landscape
    640x480 and portrait 480x640 by default, in turn), stored rotated with the EXIF orientation tags `orientations`
    in turn (by default 3 of 4 rotated), every `nested_every`-th in a nested sub-folder `sub/` (None: none). The
    classes are those of `photo`: a rotation turns a horizontal bar into a vertical one.

    Returns:
        {path: (label, upright pixels)}.
    """
    from pathlib import Path

    written = {}
    for label, name in enumerate(classes):
        for index in range(per_class):
            folder = Path(root) / name
            if nested_every and index % nested_every == nested_every - 1:
                folder = folder / "sub"
            folder.mkdir(parents=True, exist_ok=True)
            upright = photo(sizes[index % len(sizes)], label % 3, seed=seed * 1000 + label * 100 + index)
            orientation = orientations[index % len(orientations)]
            written[str(save_photo(folder / f"{index:03d}.jpg", upright, orientation))] = (label, upright)
    return written


COLOUR_CLASSES = ("red_square", "green_bar", "blue_disc", "white_cross")


def colour_shapes(count, seed=0, size=(16, 24)):
    """(images uint8 (count, H, W, 3), labels) of 4 classes of coloured shapes on tinted backgrounds (class i is
    `COLOUR_CLASSES[i]`). Every pixel stays in 40..200, and the channel means differ (about 80, 110, 140): the
    per-channel statistics of a photo folder that never reaches black or white."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    colours = [(200, 60, 60), (60, 190, 60), (60, 60, 200), (200, 200, 200)]
    height, width = size
    images, labels = [], []
    for index in range(count):
        label = index % len(COLOUR_CLASSES)
        background = tuple(int(v) for v in rng.integers((50, 90, 130), (100, 130, 170)))
        image = Image.new("RGB", (width, height), background)
        draw = ImageDraw.Draw(image)
        x, y = (int(v) for v in rng.integers(1, (width - 9, height - 9)))
        colour = colours[label]
        if label == 0:
            draw.rectangle([x, y, x + 7, y + 7], fill=colour)
        elif label == 1:
            draw.rectangle([x, y + 3, x + 8, y + 5], fill=colour)
        elif label == 2:
            draw.ellipse([x, y, x + 8, y + 8], fill=colour)
        else:
            draw.line([x, y, x + 8, y + 8], fill=colour, width=2)
            draw.line([x, y + 8, x + 8, y], fill=colour, width=2)
        images.append(np.clip(np.asarray(image), 40, 200))
        labels.append(label)
    return np.stack(images).astype(np.uint8), np.asarray(labels)


def write_image_folder(root, images, labels, names=COLOUR_CLASSES):
    """PNG files root/<class name>/<i>.png (lossless: the pixels stay exactly as given)."""
    from pathlib import Path

    from PIL import Image

    for index, (image, label) in enumerate(zip(images, labels)):
        folder = Path(root) / names[label]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / f"{index}.png")
    return Path(root)


@contextlib.contextmanager
def raises_on_command_line(match: str):
    """`pytest.raises(ValueError, match=match)` on the message as the command lines print it (`kerascnn.cli.one_line`):
    the library names a setting by its argument (`freeze_epochs=2`), the command line by its flag (`--freeze-epochs
    2`)."""
    with pytest.raises(ValueError) as caught:
        yield caught
    assert re.search(match, cli.one_line(caught.value)), cli.one_line(caught.value)
