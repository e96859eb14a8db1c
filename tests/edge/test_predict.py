"""kerascnn-predict (edge side, TensorFlow-free): it classifies the exported and the shipped files where TensorFlow
and Keras cannot be imported, checks the manifest against the model, and reports bad input in one line (exit 2)."""

import json
import os
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image

from kerascnn.export import TFLiteClassifier, metadata

if keras.backend.backend() != "tensorflow":
    pytest.skip("the exported fixtures run on the TensorFlow backend", allow_module_level=True)

ROOT = Path(__file__).resolve().parents[2]
from kerascnn_edge import predict  # noqa: E402  (TensorFlow-free)
from kerascnn_edge.manifest import Manifest  # noqa: E402


def rgb(normalized_grey: np.ndarray) -> np.ndarray:
    """Normalized grey images as the RGB export takes them (R = G = B)."""
    return np.repeat(normalized_grey, 3, axis=-1)


BLOCK_TF = (
    "import sys, runpy\n"
    "class Block:\n"
    "    def find_spec(self, name, path=None, target=None):\n"
    "        if name.split('.')[0] in ('tensorflow', 'keras', 'tf_keras', 'kerascnn'):\n"
    "            raise ImportError(f'{name} is blocked: predict.py must not need it')\n"
    "sys.meta_path.insert(0, Block())\n"
    "runpy.run_module(%r, run_name='__main__', alter_sys=True)\n"
)


def run_predict(*args):
    script = BLOCK_TF % "kerascnn_edge.predict"
    return subprocess.run([sys.executable, "-c", script, *map(str, args)], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("variant", ["int8", "int8-io", "uint8", "float32"])
def test_predict_py_without_tensorflow_classifies_png_files(exported, variant, tmp_path):
    root, _ = exported
    from kerascnn.data import load_dataset

    dataset = load_dataset("fashion_mnist")
    images, labels = dataset.splits["test"][0][:12], dataset.splits["test"][1][:12]
    files = []
    for index, image in enumerate(images):
        files.append(tmp_path / f"{index}.png")
        Image.fromarray(image[..., 0]).save(files[-1])
    rgb_big = tmp_path / "rgb_big.jpg"  # any size, colour: predict.py converts and resizes
    Image.fromarray(np.repeat(np.kron(images[0], np.ones((3, 3, 1), np.uint8)), 3, axis=-1)).save(rgb_big, quality=95)

    done = run_predict("--model", root / "out" / f"vgg_{variant}.tflite", "--json", *files, rgb_big)
    assert done.returncode == 0, done.stderr
    results = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["file"] for r in results] == [str(f) for f in [*files, rgb_big]]
    expected = TFLiteClassifier((root / "out" / f"vgg_{variant}.tflite").read_bytes())(rgb(dataset.normalize(images)))
    assert [r["top"][0][0] for r in results[:-1]] == [dataset.labels[i] for i in expected.argmax(axis=1)]
    for result, probabilities in zip(results, expected):
        assert abs(result["top"][0][1] - probabilities.max()) < 0.02
    assert sum(r["top"][0][0] == dataset.labels[y] for r, y in zip(results, labels)) >= 7
    assert results[-1]["top"][0][0] == results[0]["top"][0][0]  # the big colour copy of image 0, converted back


@pytest.mark.parametrize("variant", ["int8", "int8-io", "uint8"])
def test_shipped_model_classifies_fashion_mnist_with_predict_py(variant, tmp_path):
    """export/fashion_mnist (what the README main command writes, committed) is consistent and accurate."""
    from kerascnn.data import load_dataset

    shipped = ROOT / "export" / "fashion_mnist"
    report = json.loads((shipped / "report.json").read_text())
    dataset = load_dataset("fashion_mnist")
    images, labels = (a[:100] for a in dataset.splits["test"])
    files = []
    for index, image in enumerate(images):
        files.append(tmp_path / f"{index}.png")
        Image.fromarray(image[..., 0]).save(files[-1])
    done = run_predict("--model", shipped / f"vgg_{variant}.tflite", "--json", *files)
    assert done.returncode == 0, done.stderr
    top = [json.loads(line)["top"][0][0] for line in done.stdout.splitlines()]
    assert np.mean([t == dataset.labels[y] for t, y in zip(top, labels)]) >= 0.88
    assert report["variants"][variant]["accuracy"] >= 92.5 and report["test_images"] == 10_000
    manifest = json.loads((shipped / f"vgg_{variant}.json").read_text())
    assert manifest["input"]["shape"] == [1, 28, 28, 3] and manifest["input"]["luminance_fold"] is True
    assert (
        metadata.associated_files((shipped / f"vgg_{variant}.tflite").read_bytes())["labels.txt"].decode()
        == "\n".join(dataset.labels) + "\n"
    )


def test_predict_py_benchmark(exported, tmp_path):
    root, _ = exported
    done = run_predict(
        "--model", root / "out" / "vgg_int8.tflite", "--benchmark", "--benchmark-out", tmp_path / "b.json"
    )
    assert done.returncode == 0, done.stderr
    assert set(json.loads((tmp_path / "b.json").read_text())["median_ms_per_image"]) >= {"1"}


def test_predict_py_errors(exported, tmp_path):
    root, _ = exported
    model = root / "out" / "vgg_int8.tflite"
    done = run_predict("--model", model, "--manifest", tmp_path / "none.json", tmp_path / "x.png")
    assert done.returncode == 2 and f"Manifest {tmp_path / 'none.json'} does not exist" in done.stderr

    not_image = tmp_path / "notes.png"
    not_image.write_text("hello")
    done = run_predict("--model", model, not_image)
    assert done.returncode == 2 and "is not an image" in done.stderr and "notes.png" in done.stderr

    done = run_predict("--model", model, tmp_path / "missing.png")
    assert done.returncode == 2 and "does not exist" in done.stderr

    done = run_predict("--model", tmp_path / "typo.tflite", not_image)
    assert done.returncode == 2 and "Model file" in done.stderr and "typo.tflite does not exist" in done.stderr

    broken = json.loads((root / "out" / "vgg_int8.json").read_text())
    del broken["input"]["normalization"]["std"]
    (tmp_path / "broken.json").write_text(json.dumps(broken))
    done = run_predict("--model", model, "--manifest", tmp_path / "broken.json", not_image)
    assert done.returncode == 2 and "is not a kerascnn manifest" in done.stderr

    other = json.loads((root / "out" / "vgg_int8.json").read_text())
    other["labels"] = other["labels"][:5]
    (tmp_path / "other.json").write_text(json.dumps(other))
    done = run_predict("--model", model, "--manifest", tmp_path / "other.json", not_image)
    assert done.returncode == 2 and "does not match" in done.stderr and "takes [28, 28, 3]" in done.stderr


# --- kerascnn-predict ---------------------------------------------------------------------------------------


@pytest.fixture
def model_files(exported, tmp_path):
    root, _ = exported
    model = root / "out" / "vgg_uint8.tflite"
    return model, json.loads(model.with_suffix(".json").read_text())


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda m: m["input"]["normalization"].update(mean=[1.0, 2.0]), "mean must be a list of 1 or 3 numbers"),
        (lambda m: m["input"]["normalization"].update(mean="72.9"), "mean must be a list of 1 or 3 numbers"),
        (lambda m: m["input"]["normalization"].update(std=[0.0]), "std must be > 0"),
        (lambda m: m.update(labels="T-shirt/top"), "labels must be a list of names"),
        (lambda m: m["input"].update(shape=[28, 28, 3]), "input.shape must be \\[1, height, width, channels\\]"),
    ],
)
def test_predict_refuses_malformed_manifests(model_files, tmp_path, change, message):
    model, manifest = model_files
    change(manifest)
    (tmp_path / "m.json").write_text(json.dumps(manifest))
    with pytest.raises(predict.PredictError, match=message):
        predict.load_manifest(model, tmp_path / "m.json")
    done = run_predict("--model", model, "--manifest", tmp_path / "m.json", tmp_path / "x.png")
    assert done.returncode == 2 and "is not a kerascnn manifest" in done.stderr and "Traceback" not in done.stderr


def test_predict_threads_zero_and_bad_benchmark_out(model_files, tmp_path):
    model, _ = model_files
    done = run_predict("--model", model, "--threads", "0", tmp_path / "x.png")
    assert done.returncode == 2 and "--threads must be at least 1" in done.stderr
    done = run_predict("--model", model, "--benchmark", "--benchmark-out", tmp_path / "missing" / "b.json")
    assert done.returncode == 2 and "--benchmark-out" in done.stderr and "does not exist" in done.stderr


def test_predict_reports_a_bad_image_and_classifies_the_others(model_files, tmp_path):
    model, _ = model_files
    good = tmp_path / "good.png"
    Image.fromarray(np.full((28, 28), 200, np.uint8)).save(good)
    (tmp_path / "bad.png").write_text("not an image")
    done = run_predict("--model", model, "--json", good, tmp_path / "bad.png", good)
    assert done.returncode == 2
    assert [json.loads(line)["file"] for line in done.stdout.splitlines()] == [str(good), str(good)]
    assert "bad.png is not an image" in done.stderr and "1 of 3 images could not be classified" in done.stderr


def test_predict_scales_16_bit_images_and_composites_alpha(model_files, tmp_path):
    model, data = model_files
    manifest = Manifest.from_dict(data)
    classifier = predict.Classifier(model, manifest)
    pixels = np.random.default_rng(0).integers(0, 256, (28, 28)).astype(np.uint8)
    Image.fromarray(pixels).save(tmp_path / "8bit.png")
    Image.fromarray(pixels.astype(np.uint16) * 257).save(tmp_path / "16bit.png")  # mode I;16
    assert Image.open(tmp_path / "16bit.png").mode.startswith("I")
    np.testing.assert_allclose(
        classifier.preprocess(tmp_path / "16bit.png"), classifier.preprocess(tmp_path / "8bit.png")
    )
    rgba = np.zeros((28, 28, 4), np.uint8)
    rgba[..., :3], rgba[:14, :, 3] = 40, 255  # top half opaque dark grey, bottom half fully transparent
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    on_white = classifier.preprocess(tmp_path / "rgba.png")
    expected = np.broadcast_to(np.where(np.arange(28)[:, None, None] < 14, 40.0, 255.0), (28, 28, 3))
    np.testing.assert_allclose(on_white, (expected - classifier.mean) / classifier.std, rtol=1e-6)
    on_black = predict.Classifier(model, manifest, background="black").preprocess(tmp_path / "rgba.png")
    np.testing.assert_allclose(on_black[20], ((0 - classifier.mean) / classifier.std)[None].repeat(28, 0), rtol=1e-6)


def png_header_only(path: Path, width: int, height: int) -> None:
    """A PNG whose IHDR claims width x height (Pillow checks the size at open, before decoding)."""

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")
    )


def test_predict_explains_a_decompression_bomb(model_files, tmp_path):
    model, _ = model_files
    png_header_only(tmp_path / "huge.png", 20_000, 20_000)  # 400 M pixels > 2 x Pillow's limit
    done = run_predict("--model", model, tmp_path / "huge.png")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "huge.png is too large for Pillow's decompression-bomb limit" in done.stderr


@pytest.mark.parametrize("variant", ["uint8", "int8"])  # an integer and a float input
@pytest.mark.parametrize(
    "change, field",
    [
        (lambda m: m["labels"].reverse(), "labels"),
        (
            lambda m: m["input"]["normalization"].update(mean=[v + 10 for v in m["input"]["normalization"]["mean"]]),
            "mean",
        ),
        (
            lambda m: m["input"]["normalization"].update(std=[v * 1.5 for v in m["input"]["normalization"]["std"]]),
            "std",
        ),
        (lambda m: m["input"].update(color="grey"), "color"),
    ],
    ids=["reversed-labels", "mean", "std", "color"],
)
def test_predict_refuses_a_manifest_that_contradicts_the_model(exported, tmp_path, variant, change, field):
    """The model carries its labels, normalization and colour (TFLite metadata, labels.txt): a manifest saying
    otherwise would print the wrong class or move the scores, so it is refused naming the field."""
    root, _ = exported
    model = root / "out" / f"vgg_{variant}.tflite"
    manifest = json.loads(model.with_suffix(".json").read_text())
    change(manifest)
    (tmp_path / "m.json").write_text(json.dumps(manifest))
    Image.fromarray(np.full((28, 28), 200, np.uint8)).save(tmp_path / "x.png")
    done = run_predict("--model", model, "--manifest", tmp_path / "m.json", tmp_path / "x.png")
    assert done.returncode == 2 and "Traceback" not in done.stderr and len(done.stderr.splitlines()) == 1
    assert "contradicts" in done.stderr and (
        f"input.normalization.{field} is" in done.stderr or f"{field} is" in done.stderr
    )
    assert done.stdout == ""  # nothing classified with the contradicting manifest


@pytest.mark.parametrize("variant", ["uint8", "int8", "int8-io"])
def test_predict_without_a_manifest_reads_the_model_and_agrees(exported, tmp_path, variant):
    root, _ = exported
    model = root / "out" / f"vgg_{variant}.tflite"
    lonely = tmp_path / "lonely.tflite"
    shutil.copy(model, lonely)
    pixels = np.random.default_rng(1).integers(0, 256, (4, 28, 28), dtype=np.uint8)
    files = []
    for index, image in enumerate(pixels):
        files.append(tmp_path / f"{index}.png")
        Image.fromarray(image).save(files[-1])
    with_manifest = run_predict("--model", model, "--json", "--top-k", "10", *files)
    without = run_predict("--model", lonely, "--json", "--top-k", "10", *files)
    assert with_manifest.returncode == without.returncode == 0, without.stderr
    assert with_manifest.stdout == without.stdout  # same labels, same normalization: the same scores


def test_predict_without_a_manifest_or_metadata_says_what_to_do(tmp_path):
    from kerascnn import layers
    from kerascnn.export import convert

    inputs = keras.Input((8, 8, 1))
    bare = tmp_path / "bare.tflite"  # straight from the converter: no metadata, no labels
    bare.write_bytes(convert(keras.Model(inputs, layers.GAPHead(3)(layers.Conv2D(4, 3)(inputs))), "float32"))
    done = run_predict("--model", bare, tmp_path / "x.png")
    assert done.returncode == 2 and "No manifest for" in done.stderr and "carries no TFLite metadata" in done.stderr


def test_predict_refuses_a_fifo_and_classifies_the_files_after_it(model_files, tmp_path):
    model, _ = model_files
    good = tmp_path / "good.png"
    Image.fromarray(np.full((28, 28), 200, np.uint8)).save(good)
    os.mkfifo(tmp_path / "pipe.png")  # opening it for reading would block until a writer comes: never
    done = run_predict("--model", model, "--json", good, tmp_path / "pipe.png", good)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert [json.loads(line)["file"] for line in done.stdout.splitlines()] == [str(good), str(good)]
    assert "pipe.png is not a regular file" in done.stderr and "1 of 3 images could not be classified" in done.stderr


COMPARE_READERS = """import json, sys
from pathlib import Path
from kerascnn_edge import check_mediapipe, metadata
for path in map(Path, sys.argv[1:]):
    ours, theirs = metadata.model_metadata(path), check_mediapipe.read_metadata(path)
    print(json.dumps({"ours": ours, "mediapipe": theirs}))
"""


def test_predicts_metadata_reader_agrees_with_mediapipes_schema_code(exported):
    """predict.py reads the metadata field by field with `flatbuffers` alone; MediaPipe's generated schema code
    (in .venv-edge) must read the same colour, normalization and label file from every variant."""
    sys.path.insert(0, str(ROOT / "export"))
    import edge_venv

    root, report = exported
    files = [root / "out" / row["file"] for row in report["variants"].values()]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [str(edge_venv.ensure()), "-c", COMPARE_READERS, *map(str, files)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    for line in done.stdout.splitlines():
        ours, theirs = json.loads(line).values()
        assert ours["color"] == theirs["color_space"].lower() == "rgb"
        assert ours["mean"] == pytest.approx(theirs["mean"]) and ours["std"] == pytest.approx(theirs["std"])
        assert [["labels.txt", 2]] == theirs["label_files"] and len(ours["labels"]) == 10
