import gzip

import numpy as np
import pytest
from PIL import Image

from kerascnn.data import stream
from kerascnn.data.datasets import load_dataset
from tests.helpers import raises_on_command_line

pytestmark = pytest.mark.backend_portable


def write_images(root, classes=("cat", "dog", "fox"), per_class=8, size=(12, 10), seed=0, suffix=".png"):
    """root/<class>/<i>.png of random RGB pixels; returns {path: pixels}."""
    rng = np.random.default_rng(seed)
    written = {}
    for name in classes:
        (root / name).mkdir(parents=True, exist_ok=True)
        for index in range(per_class):
            pixels = rng.integers(0, 256, (*size, 3)).astype(np.uint8)
            path = root / name / f"{index:03d}{suffix}"
            Image.fromarray(pixels).save(path)
            written[str(path)] = pixels
    return written


def decoded(dataset, split):
    images, labels = zip(*dataset.images(split).as_numpy_iterator())
    return np.stack(images), np.array(labels)


def test_folder_split_is_seeded_disjoint_and_covers_every_file(tmp_path):
    write_images(tmp_path, per_class=20)
    data = stream.open_image_folder(tmp_path, validation_fraction=0.1, test_fraction=0.2, seed=1)
    files = {split: data.splits[split].files for split in ("train", "validation", "test")}
    assert [len(files[s]) for s in ("train", "validation", "test")] == [42, 6, 12]
    assert set().union(*map(set, files.values())) == {str(p) for p in tmp_path.glob("*/*.png")}
    assert not set(files["test"]) & (set(files["train"]) | set(files["validation"]))
    again = stream.open_image_folder(tmp_path, validation_fraction=0.1, test_fraction=0.2, seed=1)
    other = stream.open_image_folder(tmp_path, validation_fraction=0.1, test_fraction=0.2, seed=2)
    assert again.splits["test"].files == files["test"] and other.splits["test"].files != files["test"]
    assert data.input_shape == (12, 10, 3) and data.labels == ["cat", "dog", "fox"]
    assert "held out" in data.test_source


def test_folder_pixels_and_labels_match_pillow(tmp_path):
    written = write_images(tmp_path)
    data = stream.open_image_folder(tmp_path, validation_fraction=0.0, test_fraction=0.0)
    images, labels = decoded(data, "train")
    for path, image, label in zip(data.splits["train"].files, images, labels):
        np.testing.assert_array_equal(image, written[path])
        assert data.labels[label] in path


def test_resize_to_any_size_and_colour_mode(tmp_path):
    write_images(tmp_path, size=(30, 20))
    write_images(tmp_path, classes=("cat",), per_class=2, size=(17, 41), seed=5, suffix=".jpg")
    data = stream.open_image_folder(tmp_path, image_size=(24, 32), color_mode="grayscale")
    images, _ = decoded(data, "train")
    assert data.input_shape == (24, 32, 1) and images.shape[1:] == (24, 32, 1) and images.dtype == np.uint8


def test_test_dir_is_the_test_split(tmp_path):
    write_images(tmp_path / "train")
    write_images(tmp_path / "test", per_class=3, seed=9)
    data = stream.open_image_folder(tmp_path / "train", test_dir=tmp_path / "test", validation_fraction=0.25)
    assert data.count("test") == 9 and data.count("validation") == 6 and data.count("train") == 18
    assert all("/test/" in f for f in data.splits["test"].files)
    assert "test folder" in data.test_source
    write_images(tmp_path / "test", classes=("owl",), per_class=1)
    with pytest.raises(ValueError, match="class folders that the training folder lacks: owl"):
        stream.open_image_folder(tmp_path / "train", test_dir=tmp_path / "test")


def test_bad_files_are_named_before_training_or_skipped_and_counted(tmp_path):
    write_images(tmp_path, suffix=".jpg")
    (tmp_path / "cat" / "notes.jpg").write_text("not an image")
    good = (tmp_path / "dog" / "000.jpg").read_bytes()
    (tmp_path / "dog" / "cut.jpg").write_bytes(good[:-10])  # the header is fine: only the EOI check sees it
    with pytest.raises(
        ValueError,
        match=r"2 image file\(s\) cannot be decoded: .*notes\.jpg .*cut\.jpg "
        r"\(truncated JPEG.*--skip-bad-images",
    ):
        stream.open_image_folder(tmp_path)
    data = stream.open_image_folder(tmp_path, skip_bad=True, validation_fraction=0.0, test_fraction=0.0)
    assert sorted(p.rsplit("/", 1)[1] for p in data.skipped) == ["cut.jpg", "notes.jpg"]
    assert data.count("train") == 24 and len(decoded(data, "train")[0]) == 24


def test_16_bit_palette_and_rgba_images_are_converted(tmp_path):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    ramp = np.linspace(0, 65535, 64).astype(np.uint16).reshape(8, 8)
    Image.fromarray(ramp).save(tmp_path / "a" / "deep.png")  # mode I;16
    palette = Image.new("P", (8, 8))
    palette.putpalette([200, 10, 30] * 256)
    palette.save(tmp_path / "a" / "palette.png")
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., :3], rgba[:4, :, 3], rgba[4:, :, 3] = (10, 20, 30), 0, 255
    rgba[0, 0, 3] = 51  # a = 0.2: 0.2 * (10, 20, 30) + 0.8 * 255
    Image.fromarray(rgba, "RGBA").save(tmp_path / "b" / "alpha.png")
    palette_alpha = Image.new("P", (8, 8))
    palette_alpha.putpalette([0, 0, 0] * 256)
    palette_alpha.save(tmp_path / "b" / "palette_alpha.png", transparency=0)
    data = stream.open_image_folder(tmp_path, validation_fraction=0.0, test_fraction=0.0)
    assert data.input_shape == (8, 8, 3)
    images = dict(zip((f.rsplit("/", 1)[1] for f in data.splits["train"].files), decoded(data, "train")[0]))
    expected = np.round(ramp / 257).astype(np.uint8)  # scaled to 8 bits, not clipped at 255
    for channel in range(3):
        np.testing.assert_array_equal(images["deep.png"][..., channel], expected)
    assert (images["palette.png"] == (200, 10, 30)).all()
    alpha = images["alpha.png"]  # transparency composited over white, as kerascnn-predict does
    assert (alpha[4:] == (10, 20, 30)).all() and (alpha[1:4] == 255).all() and (alpha[0, 1:] == 255).all()
    np.testing.assert_array_equal(alpha[0, 0], np.round(0.2 * np.array([10, 20, 30]) + 0.8 * 255))
    assert (images["palette_alpha.png"] == 255).all()


def test_greyscale_folders_get_one_channel_and_colour_converts_like_pillow(tmp_path):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        Image.fromarray(np.full((5, 6), 7, np.uint8)).save(tmp_path / name / "x.png")
    assert stream.open_image_folder(tmp_path, validation_fraction=0.0, test_fraction=0.0).input_shape == (5, 6, 1)
    colour = np.random.default_rng(0).integers(0, 256, (5, 6, 3)).astype(np.uint8)
    Image.fromarray(colour).save(tmp_path / "a" / "y.png")
    data = stream.open_image_folder(tmp_path, color_mode="grayscale", validation_fraction=0.0, test_fraction=0.0)
    images = dict(zip((f.rsplit("/", 1)[1] for f in data.splits["train"].files), decoded(data, "train")[0]))
    pillow = np.asarray(Image.fromarray(colour).convert("L"))
    assert np.abs(images["y.png"][..., 0].astype(int) - pillow).max() <= 1
    rgb = stream.open_image_folder(tmp_path, color_mode="rgb", validation_fraction=0.0, test_fraction=0.0)
    assert (decoded(rgb, "train")[0][0] == 7).all()  # grey repeated into 3 channels


def test_statistics_are_one_streaming_pass_or_a_seeded_sample(tmp_path):
    write_images(tmp_path, per_class=30)
    data = stream.open_image_folder(tmp_path, stats_images=None)
    pixels = decoded(data, "train")[0].reshape(-1, 3).astype(np.float64)
    np.testing.assert_allclose(data.mean, pixels.mean(axis=0), atol=1e-3)
    np.testing.assert_allclose(data.std, pixels.std(axis=0), atol=1e-3)
    sampled = stream.open_image_folder(tmp_path, stats_images=20)
    assert sampled.mean != data.mean and np.allclose(sampled.mean, data.mean, atol=10)
    assert stream.open_image_folder(tmp_path, stats_images=20).mean == sampled.mean


def test_batches_are_normalized_one_hot_and_shuffled_by_seed(tmp_path):
    write_images(tmp_path, per_class=10)
    data = stream.open_image_folder(tmp_path, validation_fraction=0.0, test_fraction=0.0)
    x, y = next(iter(data.batches("train", 30)))
    raw, labels = decoded(data, "train")
    np.testing.assert_allclose(x.numpy(), (raw.astype(np.float32) - data.mean) / data.std, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(y.numpy(), np.eye(3)[labels])

    def order(seed):
        return [
            np.argmax(b[1].numpy(), 1).tolist() + b[0].numpy()[:, 0, 0, 0].tolist()
            for b in data.batches("train", 30, shuffle=True, seed=seed)
        ]

    assert order(5) == order(5) and order(5) != order(6)


@pytest.mark.parametrize("cache_bytes,path", [(None, "stream"), (10**9, "memory")])
def test_input_path_is_chosen_by_size_and_both_give_the_same_images(tmp_path, cache_bytes, path):
    write_images(tmp_path)
    data = stream.open_image_folder(tmp_path, cache_bytes=cache_bytes, validation_fraction=0.0, test_fraction=0.0)
    assert data.input_path == path
    epochs = [np.concatenate([x.numpy() for x, _ in data.batches("train", 7)]) for _ in range(2)]
    np.testing.assert_array_equal(epochs[0], epochs[1])
    assert stream.open_image_folder(tmp_path, cache_bytes=24 * 12 * 10 * 3).input_path == "memory"
    assert (
        stream.open_image_folder(
            tmp_path, cache_bytes=24 * 12 * 10 * 3 - 1, validation_fraction=0.0, test_fraction=0.0
        ).input_path
        == "stream"
    )


def test_shards_are_disjoint_and_equal(tmp_path):
    write_images(tmp_path, per_class=7)  # 21 images: each of 2 workers reads 10
    data = stream.open_image_folder(tmp_path, validation_fraction=0.0, test_fraction=0.0)
    halves = [decoded_shard(data, 2, index) for index in range(2)]
    assert len(halves[0]) == len(halves[1]) == data.count("train", 2) == 10
    assert not set(halves[0]) & set(halves[1])


def decoded_shard(dataset, shards, index):
    return [bytes(x) for x, _ in dataset.images("train", shards, index).as_numpy_iterator()]


def write_idx(path, array):
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_idx_files_stream_with_load_datasets_split(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    arrays = {
        split: (rng.integers(0, 256, (n, 28, 28)), rng.integers(0, 10, n))
        for split, n in (("train", 120), ("test", 30))
    }
    names = {
        "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
        "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
    }
    for split, (images, labels) in arrays.items():
        write_idx(tmp_path / names[split][0], images)
        write_idx(tmp_path / names[split][1], labels)
    monkeypatch.setenv("KERASCNN_FASHION_MNIST_DIR", str(tmp_path))
    in_memory = load_dataset("fashion_mnist", seed=3)
    data = stream.open_idx(
        {s: tmp_path / n[0] for s, n in names.items()},
        {s: tmp_path / n[1] for s, n in names.items()},
        in_memory.labels,
        seed=3,
        stats_images=None,
    )
    assert data.input_shape == (28, 28, 1) and "test IDX" in data.test_source
    for split in ("train", "validation", "test"):  # the same images (load_dataset keeps validation unsorted)
        images, labels = decoded(data, split)
        expected_images, expected_labels = in_memory.splits[split]
        assert sorted(zip(map(bytes, images), labels)) == sorted(zip(map(bytes, expected_images), expected_labels))
        if split != "validation":
            np.testing.assert_array_equal(images, expected_images)
    np.testing.assert_allclose(data.mean, in_memory.mean, atol=1e-3)
    np.testing.assert_allclose(data.std, in_memory.std, atol=1e-3)
    assert decoded(
        stream.open_idx(
            {s: tmp_path / n[0] for s, n in names.items()},
            {s: tmp_path / n[1] for s, n in names.items()},
            in_memory.labels,
            image_size=(32, 32),
        ),
        "test",
    )[0].shape == (30, 32, 32, 1)


def test_record_split_without_a_test_split_holds_one_out():
    import tensorflow as tf

    from kerascnn.data.pipeline import record_splits

    images = np.arange(100, dtype=np.uint8).reshape(100, 1, 1, 1)
    train = stream.Split(
        100,
        lambda: tf.data.Dataset.from_tensor_slices((images, np.arange(100) % 2)),
        lambda x, y: (x, tf.cast(y, tf.int64)),
    )
    splits = record_splits(train, None, validation_fraction=0.1, test_fraction=0.2, seed=0)
    seen = {
        split: {int(x[0, 0, 0]) for x, _ in part.source().map(part.decode).as_numpy_iterator()}
        for split, part in splits.items()
    }
    assert [len(seen[s]) for s in ("train", "validation", "test")] == [70, 10, 20]
    assert set().union(*seen.values()) == set(range(100))


def test_tfds_datasets_stream_example_by_example(monkeypatch):
    import tensorflow_datasets as tfds

    from kerascnn.data import tfds_source

    monkeypatch.setattr(tfds_source, "online", lambda: True)  # the mock "downloads" nothing
    with tfds.testing.mock_data(num_examples=24):  # offline: random examples with mnist's features
        data = stream.open_tfds("mnist", image_size=(32, 32), stats_images=None)
        assert data.input_shape == (32, 32, 1) and len(data.labels) == 10
        assert sum(data.count(s) for s in ("train", "validation", "test")) == 24
        x, y = next(iter(data.batches("train", 8)))
        assert x.shape == (8, 32, 32, 1) and y.shape == (8, 10)


def test_train_batches_depend_only_on_each_epochs_seed_and_end_with_the_epoch(tmp_path):
    write_images(tmp_path, per_class=4)  # 12 images, batches of 5: 5, 5, 2 per epoch
    data = stream.open_image_folder(tmp_path, validation_fraction=0.0, test_fraction=0.0)

    def epochs(seeds):
        return [(x.numpy(), y.numpy()) for x, y in data.train_batches(5, seeds)]

    both, first, second = epochs([11, 12]), epochs([11]), epochs([12])
    assert [len(x) for x, _ in both] == [5, 5, 2, 5, 5, 2]
    for (x, y), (x2, y2) in zip(both, first + second):  # a run resumed at epoch 2 sees the same batches
        np.testing.assert_array_equal(x, x2)
        np.testing.assert_array_equal(y, y2)
    assert not np.array_equal(first[0][0], second[0][0])
    all_images = np.concatenate([x for x, _ in first])
    np.testing.assert_allclose(
        np.sort(all_images.reshape(12, -1), 0),
        np.sort(next(iter(data.batches("train", 12)))[0].numpy().reshape(12, -1), 0),
    )


def test_arrays_hold_the_decoded_split(tmp_path):
    written = write_images(tmp_path)
    data = stream.open_image_folder(tmp_path, validation_fraction=0.25, test_fraction=0.0)
    images, labels = data.arrays("validation")
    assert images.dtype == np.uint8 and len(images) == data.count("validation") == 6
    for path, image in zip(data.splits["validation"].files, images):
        np.testing.assert_array_equal(image, written[path])
    assert len(data.arrays("train", limit=5)[0]) == 5


def test_open_picks_the_source_and_sizes_come_from_headers(tmp_path):
    assert stream.native_size_bytes("fashion_mnist") == 60_000 * 28 * 28  # Debian's IDX header, nothing decoded
    write_images(tmp_path)
    assert stream.open(stream.DataSpec(data_dir=str(tmp_path))).splits["train"].files is not None
    with raises_on_command_line("--test-dir is the test split of an image folder: give --data-dir"):
        stream.open(stream.DataSpec("fashion_mnist", test_dir=str(tmp_path)))


def test_uint8_batches_normalized_by_the_model_equal_normalized_batches(tmp_path):
    write_images(tmp_path, per_class=4)
    data = stream.open_image_folder(tmp_path, validation_fraction=0.0, test_fraction=0.0)
    (x, _), (raw, _) = next(iter(data.batches("train", 12))), next(iter(data.batches("train", 12, normalize=False)))
    assert raw.dtype == "uint8"
    np.testing.assert_allclose(data.normalization_layer()(raw.numpy()), x.numpy(), rtol=1e-5, atol=1e-5)


def test_each_process_trains_on_its_own_shard_and_the_shards_cover_the_split(tmp_path):
    """train_batches of shard 0 and 1 of 2: disjoint images whose union is the training split (an even count), for
    every epoch's seed. Every process training on shard 0 would pass a comparison of weights across processes."""
    write_images(tmp_path, per_class=6)  # 18 images: 9 per shard
    data = stream.open_image_folder(tmp_path, validation_fraction=0.0, test_fraction=0.0)
    everything = sorted(bytes(x) for x, _ in data.images("train").as_numpy_iterator())

    def shard(index):
        return dict(num_shards=2, shard_index=index, normalize=False)

    for seeds in ([3], [4]):
        shards = [
            [bytes(x) for images, _ in data.train_batches(4, seeds, **shard(i)) for x in images.numpy()]
            for i in range(2)
        ]
        assert len(shards[0]) == len(shards[1]) == 9
        assert not set(shards[0]) & set(shards[1])
        assert sorted(shards[0] + shards[1]) == everything
