"""Bad input to the export and to export/predict.py: one-line errors naming the problem and the fix (exit code 2),
and the tests that kill the mutation-testing survivors (rounding of int8 inputs, the report's sign)."""

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

from kerascnn.export import export_run, metadata
from kerascnn.export import report as reports
from kerascnn.export.__main__ import main as export_main
from kerascnn.export.runner import quantize as runner_quantize
from tests.export.test_export import ROOT, run_predict

if keras.backend.backend() != "tensorflow":
    pytest.skip("export runs on the TensorFlow backend", allow_module_level=True)

sys.path.insert(0, str(ROOT / "export"))
import predict  # noqa: E402  (export/predict.py, TensorFlow-free)

# --- the export ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("limit", ["0", "-1"])
def test_export_limit_below_one_is_refused(limit, capsys):
    with pytest.raises(SystemExit) as stop:
        export_main(["runs/any", "--limit", limit])
    assert stop.value.code == 2 and f"--limit must be at least 1, got {limit}" in capsys.readouterr().err
    with pytest.raises(ValueError, match="--limit must be at least 1 test image"):
        export_run("runs/any", limit=int(limit))


def test_export_out_that_is_a_file_or_not_writable(exported, tmp_path, monkeypatch, capsys):
    root, _ = exported
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="--out .*file is a file, not a folder"):
        export_run(root / "run", ["float32"], out=tmp_path / "file", mediapipe=False)
    assert export_main([str(root / "run"), "--quant", "float32", "--out", str(tmp_path / "file" / "sub")]) == 2
    assert "Cannot create the output folder" in capsys.readouterr().err
    real_access = os.access
    monkeypatch.setattr(
        os, "access", lambda path, mode: False if Path(path) == tmp_path / "ro" else real_access(path, mode)
    )  # root ignores permission bits: pretend
    (tmp_path / "ro").mkdir()
    with pytest.raises(ValueError, match="output folder .*ro is not writable"):
        export_run(root / "run", ["float32"], out=tmp_path / "ro", mediapipe=False)


def test_export_refuses_runs_without_labels_or_normalization_or_with_the_wrong_label_count(exported, tmp_path):
    root, _ = exported
    for change, message in [
        ({"labels": []}, "needs the class labels"),
        ({"labels": ["a"] * 9}, "gives 10 scores but the run has 9 labels"),
        ({"normalization": {"mean": [], "std": [1.0]}}, "mean must be 1 number"),
        ({"normalization": {"mean": [1.0], "std": [0]}}, "std must be > 0"),
    ]:
        run = tmp_path / "run"
        shutil.rmtree(run, ignore_errors=True)
        shutil.copytree(root / "run", run, ignore=shutil.ignore_patterns("checkpoint", "tb"))
        meta = {**json.loads((run / "dataset.json").read_text()), **change}
        (run / "dataset.json").write_text(json.dumps(meta))
        with pytest.raises(metadata.MetadataError, match=message):
            export_run(run, ["float32"], out=tmp_path / "out", mediapipe=False)
        assert not (tmp_path / "out").exists()  # refused before anything is written


def test_export_under_another_backend_says_it_runs_on_tensorflow(exported):
    root, _ = exported
    env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "kerascnn.export", str(root / "run"), "--quant", "float32"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        cwd=ROOT,
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "export runs on the TensorFlow backend" in done.stderr and "KERAS_BACKEND=tensorflow" in done.stderr


def test_export_help_says_what_finetune_images_does(capsys):
    with pytest.raises(SystemExit):
        export_main(["--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "seeded random subset of N training images" in help_text and "uint8" in help_text


# --- mutation survivors: rounding, the audit (test_presets.py), the report's sign ----------------------------


@pytest.mark.parametrize("quantize", [runner_quantize, predict.quantize], ids=["runner", "predict"])
def test_integer_input_quantization_rounds_to_nearest(quantize):
    """x / scale = 0.8, -0.8, 2.6, 300: round gives 1, -1, 3 (and clips); floor gives 0, -1, 2; truncation 0, 0, 2."""
    x = np.float32([0.4, -0.4, 1.3, 150.0])
    np.testing.assert_array_equal(quantize(x, 0.5, 3, np.int8), np.int8([4, 2, 6, 127]))
    np.testing.assert_array_equal(quantize(x, 0.5, 3, np.uint8), np.uint8([4, 2, 6, 255]))


def test_per_class_change_is_export_minus_keras():
    y = np.array([0, 0, 1, 1])
    keras_predicted = np.array([0, 0, 1, 1])
    exported_predicted = np.array([0, 0, 1, 0])  # the export misses one image of class 1
    change = reports.per_class_change(exported_predicted, keras_predicted, y, ["a", "b"])
    assert change == {"a": 0.0, "b": -50.0}
    row = {
        "size_bytes": 1,
        "gzip_bytes": 1,
        "accuracy": 75.0,
        "agreement_with_keras": 75.0,
        "per_class_accuracy_change_points": change,
        "latency_ms": {"1_thread": 1.0},
        "ops": {},
    }
    text = reports.markdown(
        {
            "model": "m",
            "dataset": "d",
            "test_images": 4,
            "keras": {"accuracy": 100.0},
            "machine": "x",
            "variants": {"int8": row},
        }
    )
    assert "| b -50.00 |" in text  # the worst class is the one the export got worse on


# --- export/predict.py ---------------------------------------------------------------------------------------


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
    model, manifest = model_files
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
sys.path.insert(0, sys.argv[1])
import check_mediapipe, predict
for path in map(Path, sys.argv[2:]):
    ours, theirs = predict.model_metadata(path), check_mediapipe.read_metadata(path)
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
        [str(edge_venv.ensure()), "-c", COMPARE_READERS, str(ROOT / "export"), *map(str, files)],
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
