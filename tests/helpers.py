"""Small helpers shared by the tests."""

import numpy as np


def random_images(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype("float32")


def copy_weights(source, target):
    """Gives `target` the weights of `source` (same shapes, same order)."""
    target.set_weights(source.get_weights())


def assert_close(actual, expected, atol=1e-5):
    """assert_allclose for tensors of any backend (converted to NumPy first)."""
    import keras

    np.testing.assert_allclose(keras.ops.convert_to_numpy(actual), keras.ops.convert_to_numpy(expected), atol=atol)


def copy_run(run_dir, root):
    """A copy of the run directory `run_dir` as `root / "run"` (shared runs stay unchanged)."""
    import shutil

    shutil.copytree(run_dir, root / "run")
    return root / "run"


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
