"""The RGB input of grey-trained models (luminance folded into the first convolution) and the TFLite metadata
(labels, normalization, colour) every export carries. Untrained models: fast."""

import io
import zipfile

import keras
import numpy as np
import pytest

from kerascnn import layers, models
from kerascnn.export import TFLiteClassifier, audit, convert
from kerascnn.export import metadata as md
from kerascnn.export.audit import op_counts
from kerascnn.export.rgb import LUMINANCE, NotFoldableError, grey_to_rgb

if keras.backend.backend() != "tensorflow":
    pytest.skip("export runs on the TensorFlow backend", allow_module_level=True)

MEAN, STD = 72.9762, 90.0342
LABELS = [f"class {i}" for i in range(10)]


def grey_pixels(n, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, 28, 28, 1)).astype(np.float32)


# the fold rewrites the first convolution's kernel and clones the graph: a model per kind of first layer and graph
# (lenet5: Keras-style Conv2D with bias; vgg: a ConvBNAct stem; resnet: residual additions; mobilenet: depthwise
# convolutions). nin's graph is vgg's kind, and mobilenetv2 (30 s of conversion here) exports RGB-native in
# tests/export/test_finetuned_mobilenetv2.py
@pytest.mark.parametrize("name", ["lenet5", "vgg", "resnet", "mobilenet"])
def test_rgb_fold_keeps_the_ops_and_the_outputs_on_grey_images(name):
    model = models.create(name, (28, 28, 1), 10)
    rgb = grey_to_rgb(model)
    assert tuple(rgb.inputs[0].shape[1:]) == (28, 28, 3) and rgb.name == model.name
    x = (grey_pixels(4) - MEAN) / STD
    np.testing.assert_allclose(rgb.predict(np.repeat(x, 3, -1), verbose=0), model.predict(x, verbose=0), atol=1e-5)
    grey_tflite, rgb_tflite = convert(model, "float32"), convert(rgb, "float32")
    assert op_counts(rgb_tflite) == op_counts(grey_tflite)  # no op added
    np.testing.assert_allclose(
        TFLiteClassifier(rgb_tflite)(np.repeat(x, 3, -1)), TFLiteClassifier(grey_tflite)(x), atol=1e-5
    )


def test_per_channel_normalization_then_luminance_is_the_grey_path():
    """Each RGB channel gets the grey mean/std: (p - mean) / std per channel, weighted by the luminance, equals
    (Y - mean) / std of the luminance Y, for any colour image (not only R = G = B)."""
    rgb = np.random.default_rng(1).integers(0, 256, (5, 3)).astype(np.float64)
    mean, std = md.input_normalization([MEAN], [STD], 3, "float32")
    assert mean == [MEAN] * 3 and std == [STD] * 3
    per_channel = ((rgb - mean) / std) @ np.asarray(LUMINANCE)
    assert np.allclose(per_channel, (rgb @ np.asarray(LUMINANCE) - MEAN) / STD)
    assert sum(LUMINANCE) == pytest.approx(1.0)


def test_rgb_fold_matches_pillow_luminance_on_colour_images():
    """On a colour image the RGB model sees what the grey model sees after Pillow's convert("L") (up to its
    rounding to whole grey levels)."""
    from PIL import Image

    model = models.create("lenet5", (28, 28, 1), 10)
    rgb_model = grey_to_rgb(model)
    colour = np.random.default_rng(2).integers(0, 256, (28, 28, 3)).astype(np.uint8)
    grey = np.asarray(Image.fromarray(colour).convert("L"), np.float32)[None, ..., None]
    expected = model.predict((grey - MEAN) / STD, verbose=0)
    got = rgb_model.predict((colour[None].astype(np.float32) - MEAN) / STD, verbose=0)
    np.testing.assert_allclose(got, expected, atol=0.02)


def test_a_first_layer_that_is_not_a_foldable_convolution_is_refused():
    inputs = keras.Input((8, 8, 1))
    pooled = layers.MaxPool2D(2, name="pool_first")(inputs)
    model = keras.Model(inputs, layers.GAPHead(3, name="head")(layers.Conv2D(4, 3, name="conv")(pooled)))
    with pytest.raises(NotFoldableError, match="first layer 'pool_first' \\(MaxPool2D\\) is not a convolution"):
        grey_to_rgb(model)
    inputs = keras.Input((8, 8, 1))
    a, b = layers.Conv2D(4, 3, name="a")(inputs), layers.Conv2D(4, 3, name="b")(inputs)
    model = keras.Model(inputs, layers.GAPHead(3, name="head")(keras.layers.Add()([a, b])))
    with pytest.raises(NotFoldableError, match="input feeds 2 layers \\(a, b\\)"):
        grey_to_rgb(model)
    with pytest.raises(NotFoldableError, match="takes a grey model"):
        grey_to_rgb(models.create("lenet5", (28, 28, 3), 10))


def meta_fields(tflite_model: bytes) -> bytes:
    raw = md.metadata_of(tflite_model)
    assert raw is not None and raw[4:8] == md.FILE_IDENTIFIER
    return raw


@pytest.fixture(scope="module")
def rgb_lenet():
    model = grey_to_rgb(models.create("lenet5", (28, 28, 1), 10))
    pixels = np.concatenate([grey_pixels(30), np.zeros((1, 28, 28, 1)), np.full((1, 28, 28, 1), 255.0)])
    return model, np.repeat((pixels - MEAN) / STD, 3, -1).astype(np.float32)


@pytest.mark.parametrize("quant", ["float32", "int8", "uint8"])
def test_metadata_keeps_the_model_running_with_the_same_outputs(rgb_lenet, quant):
    model, x = rgb_lenet
    plain = convert(model, quant, x)
    with_meta = md.add_classifier_metadata(
        plain, name="lenet5", labels=LABELS, mean=[MEAN], std=[STD], color="rgb", description="test", version="1"
    )
    audit(with_meta, quant)
    np.testing.assert_array_equal(TFLiteClassifier(with_meta)(x), TFLiteClassifier(plain)(x))
    assert md.associated_files(with_meta) == {"labels.txt": ("\n".join(LABELS) + "\n").encode()}
    raw = meta_fields(with_meta)
    assert b"lenet5" in raw and b"Apache-2.0" in raw and b"labels.txt" in raw
    mean, std = (
        np.frombuffer(v, np.float32) for v in (np.float32([MEAN] * 3).tobytes(), np.float32([STD] * 3).tobytes())
    )
    if quant == "uint8":  # raw pixels in: identity normalization
        assert np.float32([0, 0, 0]).tobytes() in raw and np.float32([1, 1, 1]).tobytes() in raw
    else:
        assert mean.tobytes() in raw and std.tobytes() in raw
    again = md.add_classifier_metadata(
        with_meta, name="lenet5", labels=LABELS, mean=[MEAN], std=[STD], color="rgb", description="test", version="2"
    )
    from tensorflow.lite.python import schema_py_generated as schema

    parsed = schema.Model.GetRootAs(bytearray(again), 0)
    names = [parsed.Metadata(i).Name() for i in range(parsed.MetadataLength())]
    assert (
        names.count(b"TFLITE_METADATA") == 1
        and parsed.BuffersLength() == schema.Model.GetRootAs(bytearray(with_meta), 0).BuffersLength()
    )  # replaced, not added
    assert abs(len(again) - len(with_meta)) <= 16  # (alignment)


def test_metadata_refuses_missing_or_mismatched_labels_and_normalization(rgb_lenet):
    model, _ = rgb_lenet
    plain = convert(model, "float32")
    good = dict(name="m", labels=LABELS, mean=[MEAN], std=[STD], color="rgb", description="d", version="1")
    for change, message in [
        (dict(labels=LABELS[:9]), "gives 10 scores but the run has 9 labels"),
        (dict(labels=[]), "needs the class labels"),
        (dict(labels="T-shirt,Trouser"), "needs the class labels"),
        (dict(mean=None), "mean must be 1 or 3 numbers"),
        (dict(std=[1.0, 2.0]), "std must be 1 or 3 numbers"),
        (dict(std=[0.0]), "std must be > 0"),
        (dict(color="grey"), "grey image input must be \\(1, H, W, 1\\)"),
    ]:
        with pytest.raises(md.MetadataError, match=message):
            md.add_classifier_metadata(plain, **{**good, **change})


def test_associated_files_is_empty_without_a_zip():
    assert md.associated_files(b"not a zip") == {}
    buffer = io.BytesIO(b"prefix")
    with zipfile.ZipFile(buffer, "a") as z:
        z.writestr("labels.txt", "a\n")
    assert md.associated_files(buffer.getvalue()) == {"labels.txt": b"a\n"}


def test_the_folded_weights_are_pillows_luminance_channel_by_channel():
    """Pure red, green and blue through the fold give Pillow's convert("L") of each (76, 150, 29): a swapped or
    wrong weight would see every colour photo through the wrong luminance."""
    from PIL import Image

    inputs = keras.Input((2, 2, 1))
    identity = keras.Model(inputs, layers.Conv2D(1, 1, use_bias=False, kernel_initializer="ones", name="c")(inputs))
    rgb = grey_to_rgb(identity)
    for colour in [(255, 0, 0), (0, 255, 0), (0, 0, 255), (200, 100, 50)]:
        image = np.full((2, 2, 3), colour, np.uint8)
        pillow = float(np.asarray(Image.fromarray(image).convert("L"), np.float32)[0, 0])
        seen = float(rgb.predict(image[None].astype(np.float32), verbose=0)[0, 0, 0, 0])
        assert abs(seen - pillow) <= 0.5, (colour, seen, pillow)  # Pillow rounds to a whole grey level


@pytest.mark.parametrize("mean, std", [([MEAN], [STD]), ([120.0, 110.0, 100.0], [60.0, 50.0, 40.0])])
def test_the_input_stats_are_the_normalized_black_and_white(rgb_lenet, mean, std):
    """A float32 input's Stats (min, max) per channel are (0 - mean) / std and (255 - mean) / std: what black and
    white pixels become."""
    model, _ = rgb_lenet
    with_meta = md.add_classifier_metadata(
        convert(model, "float32"),
        name="m",
        labels=LABELS,
        mean=mean,
        std=std,
        color="rgb",
        description="d",
        version="1",
    )
    raw = meta_fields(with_meta)
    mean3, std3 = np.float64(mean * (3 // len(mean))), np.float64(std * (3 // len(std)))
    black, white, beyond = (np.float32((pixel - mean3) / std3).tobytes() for pixel in (0, 255, 256))
    assert black in raw and white in raw and beyond not in raw
