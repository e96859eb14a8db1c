"""kerascnn.data.images: training's decode, EXIF orientation and resize equal kerascnn-predict's Pillow preprocessing
(the edge side) to within one grey level."""

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from kerascnn.data import images, stream
from tests.helpers import make_photo_folder, photo, save_photo

pytestmark = pytest.mark.backend_portable
ROOT = Path(__file__).resolve().parents[2]


def predict_py():
    from kerascnn_edge import predict

    return predict


def training_pixels(paths, image_size, color_mode):
    """The images as training decodes them: the folder reader (orientation from the header) and the pipeline."""
    root = Path(paths[0]).parents[1]
    data = stream.open_image_folder(
        root, image_size=image_size, color_mode=color_mode, validation_fraction=0, test_fraction=0, stats_images=1
    )
    decoded = dict(zip(data.splits["train"].files, data.arrays("train")[0]))
    return [decoded[str(p)] for p in paths]


@pytest.mark.parametrize("size", [(96, 96), (28, 28)])
@pytest.mark.parametrize("color_mode", ["rgb", "grayscale"])
def test_training_decode_equals_predict_py_on_rotated_phone_photos(tmp_path, size, color_mode):
    """A 640x480 and a 480x640 photo, each stored rotated with an orientation tag, and one upright."""
    written = make_photo_folder(tmp_path, classes=("a", "b"), per_class=3, orientations=(6, 8, 1), nested_every=None)
    paths = list(written)
    channels = 1 if color_mode == "grayscale" else 3
    predict = predict_py()
    for path, trained in zip(paths, training_pixels(paths, size, color_mode)):
        with Image.open(path) as image:
            edge = predict.load_pixels(image, size, channels)
        assert trained.shape == edge.shape == (*size, channels)
        assert np.abs(trained.astype(int) - edge).max() <= 1, path
    # the tags matter: decoding without them gives other pixels
    with Image.open(paths[0]) as image:
        assert image.getexif()[0x0112] == 6
        sideways = np.asarray(image.convert("RGB").resize(size[::-1], Image.BILINEAR))
    if channels == 3:
        assert np.abs(training_pixels(paths[:1], size, color_mode)[0].astype(int) - sideways).mean() > 10


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_orientation_is_turned_as_pillows_exif_transpose(tmp_path, orientation):
    pixels = np.random.default_rng(orientation).integers(0, 256, (5, 7, 3)).astype(np.uint8)
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        exif = Image.Exif()
        exif[0x0112] = orientation
        Image.fromarray(pixels).save(tmp_path / name / "x.png", exif=exif)  # PNG: lossless, so exact
    data = stream.open_image_folder(tmp_path, validation_fraction=0, test_fraction=0)
    with Image.open(tmp_path / "a" / "x.png") as image:
        expected = np.asarray(ImageOps.exif_transpose(image).convert("RGB"))
    assert data.input_shape == (*expected.shape[:2], 3)  # 5..8 swap height and width
    np.testing.assert_array_equal(data.arrays("train")[0][0], expected)


def test_jpeg_decoding_is_pillows_and_the_resize_is_pillows_bilinear():
    import tensorflow as tf

    picture = photo((480, 640), 0)
    buffer = io.BytesIO()
    Image.fromarray(picture).save(buffer, "JPEG", quality=90)
    with Image.open(io.BytesIO(buffer.getvalue())) as image:
        pillow = image.convert("RGB")
    decoded = images.decode(tf.constant(buffer.getvalue()), 3).numpy()
    assert np.abs(decoded.astype(int) - np.asarray(pillow)).max() <= 1  # TF's default fast IDCT: up to 4
    for size in ((96, 96), (28, 28), (600, 800), (17, 1000)):  # shrinking, enlarging, both
        resized = images.resize(tf.constant(decoded), size).numpy()
        expected = np.asarray(pillow.resize(size[::-1], Image.BILINEAR))
        assert np.abs(resized.astype(int) - expected).max() <= 1, size


def test_grey_conversion_is_pillows(tmp_path):
    import tensorflow as tf

    rgb = np.random.default_rng(0).integers(0, 256, (16, 16, 3)).astype(np.uint8)
    grey = images.convert_channels(tf.constant(rgb), 1).numpy()[..., 0]
    np.testing.assert_array_equal(grey, np.asarray(Image.fromarray(rgb).convert("L")))


def test_save_photo_stores_the_picture_rotated_with_its_tag(tmp_path):
    upright = photo((48, 64), 1)
    with Image.open(save_photo(tmp_path / "p.jpg", upright, 6)) as image:
        assert image.size == (48, 64) and image.getexif()[0x0112] == 6  # stored as 64 high, 48 wide
        assert np.abs(np.asarray(ImageOps.exif_transpose(image)).astype(int) - upright).mean() < 8


def test_a_batch_that_cannot_fit_in_memory_is_refused_with_the_figures():
    with pytest.raises(ValueError, match=r"--image-size 10000 10000: one batch of 128 .* needs 153\.6 GB"):
        images.check_memory((10000, 10000, 3), 128)
    images.check_memory((96, 96, 3), 128)


def test_a_batch_over_half_of_the_memory_is_refused_and_one_under_half_is_not(monkeypatch):
    """The margin: half of the RAM, not all of it (the model's activations need several times the batch)."""
    monkeypatch.setattr(images, "physical_memory_bytes", lambda: 10**9)
    with pytest.raises(ValueError, match=r"needs 0\.6 GB as float32 .* over half of this machine's 1\.0 GB"):
        images.check_memory((1000, 1000, 3), 50)  # 0.6 GB
    images.check_memory((1000, 1000, 3), 40)  # 0.48 GB
