import numpy as np
import pytest
from PIL import Image

from kerascnn.data import load_dataset
from kerascnn.data.idx import FASHION_MNIST_LABELS

pytestmark = pytest.mark.backend_portable


@pytest.fixture(scope="module")
def fashion_mnist():
    return load_dataset("fashion_mnist", seed=3)


def test_fashion_mnist_offline_from_debian_idx_files(fashion_mnist):
    train, validation, test = (fashion_mnist.splits[s] for s in ("train", "validation", "test"))
    assert fashion_mnist.labels == FASHION_MNIST_LABELS
    assert (len(train[0]), len(validation[0]), len(test[0])) == (55_000, 5_000, 10_000)
    for images, labels in (train, validation, test):  # tfds's fashion_mnist: uint8 (28, 28, 1), int64 labels
        assert images.dtype == np.uint8 and images.shape[1:] == (28, 28, 1)
        assert labels.dtype == np.int64 and set(np.unique(labels)) == set(range(10))
    assert fashion_mnist.input_shape == (28, 28, 1)
    assert 70 < fashion_mnist.mean[0] < 75 and 88 < fashion_mnist.std[0] < 92


def test_validation_split_is_seeded_and_disjoint(fashion_mnist):
    again = load_dataset("fashion_mnist", seed=3, validation_fraction=0.1)
    assert len(again.splits["validation"][0]) == 6_000
    other = load_dataset("fashion_mnist", seed=4)
    assert not np.array_equal(other.splits["validation"][0], fashion_mnist.splits["validation"][0])
    train_rows = {bytes(x) for x in fashion_mnist.splits["train"][0][:20_000]}
    assert not any(bytes(x) in train_rows for x in fashion_mnist.splits["validation"][0][:500])


def test_normalize_and_metadata(fashion_mnist):
    x = fashion_mnist.normalize(fashion_mnist.splits["train"][0][:2000])
    assert x.dtype == np.float32 and abs(x.mean()) < 0.1 and 0.9 < x.std() < 1.1
    meta = fashion_mnist.metadata()
    assert meta["labels"] == FASHION_MNIST_LABELS and meta["input_shape"] == [28, 28, 1]
    assert meta["normalization"]["mean"] == fashion_mnist.mean


def test_missing_dataset_names_both_ways_to_get_it(tmp_path, monkeypatch):
    from tensorflow_datasets.core.download import downloader

    monkeypatch.setenv("KERASCNN_FASHION_MNIST_DIR", str(tmp_path / "absent"))
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))
    monkeypatch.setattr(downloader, "MAX_RETRIES", 0)  # fail fast offline (tfds retries for minutes)
    with pytest.raises(RuntimeError, match="apt-get install dataset-fashion-mnist.*online: tfds downloads it"):
        load_dataset("fashion_mnist")


def make_folder(root, classes=("cat", "dog", "fox"), per_class=6, size=(12, 10), mode="RGB"):
    rng = np.random.default_rng(0)
    for name in classes:
        (root / name).mkdir(parents=True)
        for index in range(per_class):
            shape = (size[0], size[1], 3) if mode == "RGB" else size
            pixels = rng.integers(0, 256, shape).astype(np.uint8)
            Image.fromarray(pixels, mode).save(root / name / f"{index}.png")
    return root


def test_image_folder_with_validation_split(tmp_path):
    make_folder(tmp_path / "pets")
    dataset = load_dataset(data_dir=tmp_path / "pets", validation_fraction=0.25)
    assert dataset.name == "pets" and dataset.labels == ["cat", "dog", "fox"]
    assert dataset.input_shape == (12, 10, 3)
    counts = [len(dataset.splits[s][0]) for s in ("train", "validation", "test")]
    assert sum(counts) == 18 and counts[1] == 4 and counts[2] == 2  # the test split: a held-out 1/12


def read_image_folder(root, image_size=None):
    """(images, labels, class names) of a folder, through the data stack, every file in the train split."""
    from kerascnn.data import stream

    data = stream.open_image_folder(root, image_size=image_size, validation_fraction=0.0, test_fraction=0.0)
    return (*data.arrays("train"), data.labels)


def test_image_folder_resizes_and_keeps_greyscale(tmp_path):
    make_folder(tmp_path / "grey", classes=("a", "b"), size=(9, 7), mode="L")
    Image.fromarray(np.zeros((20, 30), np.uint8), "L").save(tmp_path / "grey" / "a" / "big.png")
    images, labels, names = read_image_folder(tmp_path / "grey")
    assert images.shape == (13, 9, 7, 1) and names == ["a", "b"] and labels.tolist() == [0] * 7 + [1] * 6
    images, _, _ = read_image_folder(tmp_path / "grey", image_size=(28, 28))
    assert images.shape[1:] == (28, 28, 1)


def test_corrupt_image_is_named(tmp_path):
    root = make_folder(tmp_path / "pets", classes=("cat", "dog"))
    (root / "dog" / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(ValueError, match=r"cannot be decoded: .*dog/broken\.png"):
        read_image_folder(root)


def test_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_image_folder(tmp_path / "nowhere")
    (tmp_path / "one" / "only").mkdir(parents=True)
    with pytest.raises(ValueError, match="one sub-folder per class"):
        read_image_folder(tmp_path / "one")


def _two_classes(root, make):
    for name in ("a", "b"):
        (root / name).mkdir(parents=True)
        make(root / name / "x.png")
    return root


def test_sixteen_bit_png_is_scaled_not_clipped(tmp_path):
    pixels = np.array([[0, 257 * 128, 65535, 1000]], np.uint16)
    root = _two_classes(tmp_path / "deep", lambda path: Image.fromarray(pixels).save(path))
    assert Image.open(root / "a" / "x.png").mode.startswith("I")  # really a 16-bit file
    images, _, _ = read_image_folder(root)
    assert images.shape == (2, 1, 4, 1)
    np.testing.assert_array_equal(images[0, 0, :, 0], [0, 128, 255, 4])


def test_transparency_is_composited_on_white(tmp_path):
    rgba = np.array([[[0, 0, 0, 0], [0, 0, 0, 255], [200, 0, 0, 255], [0, 0, 0, 128]]], np.uint8)
    root = _two_classes(tmp_path / "alpha", lambda path: Image.fromarray(rgba, "RGBA").save(path))
    images, _, _ = read_image_folder(root)
    np.testing.assert_array_equal(images[0, 0, :3], [[255, 255, 255], [0, 0, 0], [200, 0, 0]])
    assert abs(int(images[0, 0, 3, 0]) - 127) <= 1  # half transparent black over white


def test_palette_image_with_transparency(tmp_path):
    def make(path):
        image = Image.fromarray(np.array([[0, 1]], np.uint8), "P")
        image.putpalette([10, 20, 30, 200, 100, 50])
        image.save(path, transparency=0)

    images, _, _ = read_image_folder(_two_classes(tmp_path / "palette", make))
    np.testing.assert_array_equal(images[0, 0], [[255, 255, 255], [200, 100, 50]])


def test_decompression_bomb_is_named(tmp_path, monkeypatch):
    root = make_folder(tmp_path / "pets", classes=("cat", "dog"))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 20)  # 12 x 10 images are "bombs" over 2 x 20 pixels
    with pytest.raises(ValueError, match=r"cat/0\.png \(DecompressionBombError"):
        read_image_folder(root)


def test_offline_machine_without_the_dataset_fails_within_seconds(tmp_path, monkeypatch):
    """Nothing monkeypatched in tfds: only the network is blocked, as on an offline machine."""
    import socket
    import time

    def no_network(*args, **kwargs):
        raise OSError("network is unreachable (blocked by the test)")

    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    monkeypatch.setenv("KERASCNN_FASHION_MNIST_DIR", str(tmp_path / "absent"))
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))
    started = time.perf_counter()
    with pytest.raises(RuntimeError, match="cannot reach .*apt-get install dataset-fashion-mnist"):
        load_dataset("fashion_mnist")
    assert time.perf_counter() - started < 30  # tfds alone retries for about 2.5 minutes


def test_setup_script_installs_the_debian_package_where_it_is_missing(tmp_path):
    import os
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "apt.log"
    for tool, body in (("apt-get", f'echo "$@" >> {log}'), ("id", "echo 0")):
        (bin_dir / tool).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / tool).chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "KERASCNN_FASHION_MNIST_DIR": str(tmp_path)}
    done = subprocess.run([str(root / "scripts" / "setup-data")], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert log.read_text().splitlines() == ["update -q", "install -y -q dataset-fashion-mnist"]
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(b"")  # present: nothing to do
    log.unlink()
    assert subprocess.run([str(root / "scripts" / "setup-data")], env=env, timeout=60).returncode == 0
    assert not log.exists()
