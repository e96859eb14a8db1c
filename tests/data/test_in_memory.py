"""The in-memory input holds the training pixels once, as uint8, and normalizes each batch as it is gathered
(issue 35, item 8: a float32 copy and its temporaries cost about 12 times the pixels)."""

import tracemalloc

import numpy as np
import pytest

from kerascnn.data.pipeline import StreamingDataset
from kerascnn.train import feeding
from kerascnn.train.batches import EpochBatches, TFEpochBatches, held_by_tensorflow, ordered_batches
from kerascnn.train.config import TrainConfig
from tests.data.test_stream import write_images

MEAN, STD = [120.0, 100.0, 80.0], [60.0, 50.0, 40.0]


def normalized(images):
    return (images.astype(np.float32) - np.float32(MEAN)) / np.float32(STD)


@pytest.mark.backend_portable
def test_uint8_batches_are_normalized_as_they_are_gathered():
    images = np.random.default_rng(0).integers(0, 256, (10, 4, 5, 3)).astype(np.uint8)
    labels = np.arange(10) % 3
    plain = EpochBatches(normalized(images), labels, 3, 4, seed=2)
    batches = EpochBatches(images, labels, 3, 4, seed=2, normalization=(MEAN, STD))
    assert batches.images is images  # held as given: no float32 copy of the split
    for index in range(len(batches)):
        x, y = batches[index]
        assert x.dtype == np.float32
        np.testing.assert_allclose(x, plain[index][0], rtol=1e-6)
        np.testing.assert_array_equal(y, plain[index][1])
    tf_batches = TFEpochBatches(images, labels, 3, 4, seed=2, normalization=(MEAN, STD))
    tf_batches.on_epoch_begin(0)
    for (x, _), (expected, _) in zip(tf_batches.dataset.as_numpy_iterator(), (plain[i] for i in range(3))):
        np.testing.assert_allclose(x, expected, rtol=1e-6)
    # validation and test: in order, normalized bit for bit as a whole float32 split would be
    held, view = held_by_tensorflow(images, "pixels")
    np.testing.assert_array_equal(view, images)
    for source in (images, held):  # a PyDataset from NumPy (JAX, PyTorch), tf.data gathers from the variable
        ordered = ordered_batches(source, labels, 3, 4, normalization=(MEAN, STD))
        got = [ordered[i] for i in range(len(ordered))] if source is images else ordered.as_numpy_iterator()
        x, y = (np.concatenate(part) for part in zip(*got))
        np.testing.assert_array_equal(x, normalized(images))
        np.testing.assert_array_equal(y, np.eye(3, dtype=np.float32)[labels])


def peak_bytes(config) -> tuple[int, feeding.Data]:
    """Peak of the memory Python and NumPy allocate while `load_data(config)` runs (TensorFlow's own is not traced)."""
    tracemalloc.start()
    try:
        data = feeding.load_data(config)
        return tracemalloc.get_traced_memory()[1], data
    finally:
        tracemalloc.stop()


def test_the_in_memory_training_split_is_its_uint8_pixels_held_once(tmp_path):
    """The peak grows by about the pixels' bytes per image: once the uint8 splits, plus the normalized validation and
    test sixth (4 x 1/6); a float32 training copy with its temporaries would add about 9x. Two sizes, so that the
    fixed costs (the statistics' batch of 256 images, tracing) cancel."""
    sizes = {}
    for count in (300, 300, 900):  # the first 300 warms up the decoding's tracing
        write_images(tmp_path / str(count), classes=("a", "b"), per_class=count // 2, size=(32, 32))
        config = TrainConfig(data_dir=str(tmp_path / str(count)), input_pipeline="memory")
        sizes[count], data = peak_bytes(config)
        assert data.input_path == "memory" and data.x_train.dtype == np.uint8
        assert data.x_train.nbytes == len(data.y_train) * 32 * 32 * 3
    growth = (sizes[900] - sizes[300]) / (600 * 32 * 32 * 3)
    assert growth < 3, f"{growth:.1f} bytes per pixel byte"


def test_every_in_memory_split_is_held_once_as_uint8_and_only_batches_are_normalized(tmp_path, monkeypatch):
    """On TensorFlow each split's pixels are one tf.Variable's buffer, which the arrays of `Data` view and the
    training, validation and test batches gather from (still the same buffer after gathering: no copy-on-read);
    no float32 copy of a whole split is made (`normalize` only ever sees a batch)."""
    write_images(tmp_path / "pets", classes=("a", "b"), per_class=30, size=(8, 8))  # 50 / 5 / 5 images
    config = TrainConfig(data_dir=str(tmp_path / "pets"), input_pipeline="memory", batch_size=4, seed=1)
    normalized_counts = []
    normalize = StreamingDataset.normalize
    monkeypatch.setattr(
        StreamingDataset,
        "normalize",
        lambda self, images: normalized_counts.append(len(images)) or normalize(self, images),
    )
    data = feeding.load_data(config)
    arrays = {"train": data.x_train, "validation": data.x_val, "test": data.x_test}
    assert [len(a) for a in arrays.values()] == [50, 5, 5]

    def one_buffer(split):
        return np.asarray(data.held[split].value()).ctypes.data == arrays[split].ctypes.data

    for split, images in arrays.items():
        assert images.dtype == np.uint8 and not images.flags.owndata and one_buffer(split)

    batches, validation, _, ordering = feeding.fit_inputs(config, data, 4, 13, 0)
    assert ordering[0].pixels is data.held["train"]  # gathered from, not copied
    ordering[0].on_epoch_begin(0)
    assert sum(len(x) for x, _ in batches.as_numpy_iterator()) == 50
    expected = (data.x_val.astype(np.float32) - np.float32(data.dataset.mean)) / np.float32(data.dataset.std)
    np.testing.assert_array_equal(np.concatenate([x for x, _ in validation.as_numpy_iterator()]), expected)
    assert sum(len(x) for x, _ in feeding.in_order(data, "test", 512).as_numpy_iterator()) == 5
    sample = feeding.batch_norm_images(config, data, recompute=True)
    assert sample[0:4].dtype == np.float32 and len(sample) == 50
    assert all(one_buffer(split) for split in arrays)
    assert max(normalized_counts) <= 4, normalized_counts
