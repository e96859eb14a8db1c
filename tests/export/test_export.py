"""Export: conversion under each preset with builtin ops only, the audit, manifests, the report, atomic
writes (kerascnn-predict, the edge side, is tested in tests/edge/)."""

import json
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image

from kerascnn import layers, models
from kerascnn.export import AuditError, ConversionError, TFLiteClassifier, audit, convert, export_run, metadata
from kerascnn.rundir import atomic_write
from tests.helpers import random_images

if keras.backend.backend() != "tensorflow":
    pytest.skip("export runs on the TensorFlow backend", allow_module_level=True)

ROOT = Path(__file__).resolve().parents[2]


# mobilenetv2: every preset of a fine-tuned one goes through the audit in test_finetuned_mobilenetv2.py
@pytest.mark.parametrize("name", [name for name in models.names() if name != "mobilenetv2"])
def test_every_zoo_model_exports_float32_and_int8_with_builtin_ops(name):
    model = models.create(name, (28, 28, 1), 10)
    x = random_images((32, 28, 28, 1))
    float_model = convert(model, "float32")
    ops = {op["op"] for op in audit(float_model, "float32")}
    assert not [op for op in ops if op.startswith("Flex")] and "BATCH_NORMALIZATION" not in ops
    np.testing.assert_allclose(TFLiteClassifier(float_model)(x[:4]), model.predict(x[:4], verbose=0), atol=1e-5)
    int8_model = convert(model, "int8", representative_images=x)
    ops = [op["op"] for op in audit(int8_model, "int8")]
    assert ops[0] == "QUANTIZE" and ops[-1] == "DEQUANTIZE"
    assert len(int8_model) < len(float_model) / 2.5


def rgb(normalized_grey: np.ndarray) -> np.ndarray:
    """Normalized grey images as the RGB export takes them (R = G = B)."""
    return np.repeat(normalized_grey, 3, axis=-1)


def test_report_rows(exported):
    root, report = exported
    assert set(report["variants"]) == {"float32", "int8", "int8-io", "uint8"}
    assert "RGB image" in report["input"] and "luminance" in report["input"]
    float_row, int8_row = report["variants"]["float32"], report["variants"]["int8"]
    assert float_row["agreement_with_keras"] == 100.0
    assert int8_row["agreement_with_keras"] >= 97.0
    assert int8_row["size_bytes"] < float_row["size_bytes"] / 2.5
    assert set(int8_row["latency_ms"]) >= {"1_thread"} and all(v > 0 for v in int8_row["latency_ms"].values())
    assert len(int8_row["per_class_accuracy_change_points"]) == 10
    saved = json.loads((root / "out" / "report.json").read_text())
    assert saved["variants"]["int8"]["accuracy"] == int8_row["accuracy"]
    markdown = (root / "out" / "report.md").read_text()
    assert "| int8 |" in markdown and "| uint8 |" in markdown and "MediaPipe accuracy (%)" in markdown
    assert "not measured (no .venv-edge" in markdown


def test_manifest_describes_the_model(exported):
    root, _ = exported
    manifest = json.loads((root / "out" / "vgg_int8-io.json").read_text())
    assert manifest["labels"][9] == "Ankle boot"
    assert manifest["input"]["shape"] == [1, 28, 28, 3] and manifest["input"]["dtype"] == "int8"
    assert manifest["input"]["color"] == "rgb" and manifest["input"]["luminance_fold"] is True
    assert manifest["input"]["pixel_offset"] == -128 and "luminance" in manifest["input"]["description"]
    assert len(manifest["input"]["normalization"]["mean"]) == 3
    uint8 = json.loads((root / "out" / "vgg_uint8.json").read_text())
    assert uint8["input"]["dtype"] == uint8["output"]["dtype"] == "uint8" and uint8["input"]["pixel_offset"] == 0
    assert manifest["input"]["quantization"]["scale"] > 0 and manifest["output"]["dtype"] == "int8"
    assert manifest["converter"]["calibration_images"] == 202 and len(manifest["converter"]["calibration_sha256"]) == 64
    assert {"tensorflow", "keras", "ai_edge_litert"} <= set(manifest["versions"])
    float_manifest = json.loads((root / "out" / "vgg_float32.json").read_text())
    assert float_manifest["input"]["quantization"] is None and float_manifest["converter"]["calibration_sha256"] is None


class Cumprod(keras.layers.Layer):
    def call(self, x):
        import tensorflow as tf

        return tf.math.cumprod(x, axis=1)  # FlexCumprod: no TFLite builtin


def flex_model():
    inputs = keras.Input((8, 8, 1))
    h = layers.Conv2D(4, 3, padding="same", name="conv")(inputs)
    return keras.Model(inputs, layers.GAPHead(3, name="head")(Cumprod(name="my_cumprod")(h)))


def test_a_flex_op_fails_conversion_naming_op_and_layer():
    with pytest.raises(ConversionError, match=r"TensorFlow op Cumprod in layer 'my_cumprod'"):
        convert(flex_model(), "float32")


def test_audit_rejects_flex_ops_and_float_inside_int8():
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(flex_model())
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS]
    with pytest.raises(AuditError, match="not a TFLite builtin|not a loadable"):
        audit(converter.convert(), "float32")
    float_model = convert(models.create("lenet5"), "float32")
    with pytest.raises(AuditError, match="computes op 0 .* in float32"):
        audit(float_model, "int8")


def test_a_dataset_that_changed_since_training_is_refused(exported, tmp_path):
    import shutil

    root, _ = exported
    shutil.copytree(root / "run", tmp_path / "run")
    meta = json.loads((tmp_path / "run" / "dataset.json").read_text())
    meta["labels"] = meta["labels"][::-1]  # the statistics are dataset.json's own: only what listing shows compares
    (tmp_path / "run" / "dataset.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="The dataset changed since .*labels"):
        export_run(tmp_path / "run", ["float32"], out=tmp_path / "out")
    (tmp_path / "run" / "config.yaml").write_text("dataset: [unclosed")
    with pytest.raises(ValueError, match="damaged dataset.json or config.yaml"):
        export_run(tmp_path / "run", ["float32"], out=tmp_path / "out")


def test_a_keras_file_outside_a_run_directory_is_explained(exported, tmp_path):
    import shutil

    root, _ = exported
    shutil.copy(root / "run" / "best.keras", tmp_path / "model.keras")
    with pytest.raises(FileNotFoundError, match="dataset.json is missing: the export needs the labels"):
        export_run(tmp_path / "model.keras")


def test_bad_sources(exported, tmp_path):
    import shutil

    root, _ = exported
    with pytest.raises(FileNotFoundError, match="No model at"):
        export_run(tmp_path / "nowhere")
    shutil.copytree(root / "run", tmp_path / "run", ignore=shutil.ignore_patterns("checkpoint", "tb"))
    model = (tmp_path / "run" / "best.keras").read_bytes()
    (tmp_path / "run" / "best.keras").write_bytes(model[: len(model) // 2])  # an interrupted copy
    with pytest.raises(ValueError, match="best.keras is truncated or damaged: not a complete .keras"):
        export_run(tmp_path / "run", out=tmp_path / "out")
    (tmp_path / "run" / "best.keras").write_bytes(b"PK\x03\x04 not a zip really")
    with pytest.raises(ValueError, match="best.keras is truncated or damaged"):
        export_run(tmp_path / "run", out=tmp_path / "out")
    with pytest.raises(ValueError, match="Unknown quantization int4"):
        export_run(tmp_path / "run", ["int4"])


def test_interrupted_write_leaves_no_half_written_tflite(tmp_path, monkeypatch):
    target = tmp_path / "model.tflite"
    target.write_bytes(b"the previous export")
    real_write_bytes = Path.write_bytes

    def write_half_then_die(self, data):
        real_write_bytes(self, data[: len(data) // 2])
        raise KeyboardInterrupt

    monkeypatch.setattr(Path, "write_bytes", write_half_then_die)
    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, b"x" * 1000)
    assert target.read_bytes() == b"the previous export"
    assert list(tmp_path.iterdir()) == [target]  # and no temp file left behind


def test_a_streamed_folder_run_exports_on_its_own_held_out_test_images(tmp_path):
    """A folder run reads its data through kerascnn.data.stream (a seeded split of the file list); export must read
    the same splits and statistics again (dataset.json's "reader"), not load_dataset's in-memory split, whose
    statistics differ (it refused the run as changed data) and whose test images include training images."""
    from kerascnn.train import resolve, train

    rng = np.random.default_rng(0)
    for index, name in enumerate(["dark", "mid", "light"]):
        (tmp_path / "pets" / name).mkdir(parents=True)
        for i in range(40):
            pixels = (rng.random((16, 16, 3)) * 80 + index * 80).astype(np.uint8)
            Image.fromarray(pixels).save(tmp_path / "pets" / name / f"{i}.png")
    run = tmp_path / "run"
    metrics = train(
        resolve(
            dict(
                data_dir=str(tmp_path / "pets"),
                model="vgg",
                model_options=dict(widths=(8, 8, 8)),
                epochs=1,
                batch_size=16,
                tensorboard=False,
                out=str(run),
            )
        )
    )
    assert json.loads((run / "dataset.json").read_text())["reader"] == "stream"
    report = export_run(run, ["float32"], out=tmp_path / "out", latency_rounds=1, mediapipe=False)
    assert report["test_images"] == metrics["test_images"] == 10  # round(120 / 12) held out
    assert report["keras"]["accuracy"] == pytest.approx(100 * metrics["test_accuracy_best"], abs=1e-6)


def test_export_reads_a_folder_run_from_its_recorded_spec_without_rechecking_or_new_statistics(tmp_path, monkeypatch):
    """Export opens the run's data from dataset.json's spec and takes the statistics from it: no header check of the
    whole folder, no statistics pass; a folder whose files changed since training is refused before decoding."""
    from kerascnn.data import folder, pipeline
    from kerascnn.train import resolve, train
    from tests.helpers import make_photo_folder

    make_photo_folder(tmp_path / "photos", classes=("horizontal", "vertical"), per_class=12, seed=1)
    run = tmp_path / "run"
    settings = dict(model="vgg", model_options=dict(widths=(8, 8, 8)), epochs=1, batch_size=8, tensorboard=False)
    train(resolve(dict(settings, data_dir=str(tmp_path / "photos"), image_size=[32, 32], out=str(run))))
    recorded = json.loads((run / "dataset.json").read_text())
    assert recorded["spec"]["image_size"] == [32, 32] and recorded["files_per_class"] == [12, 12]

    def refuse(*args, **kwargs):
        raise AssertionError("export must not re-check the folder or recompute the statistics")

    monkeypatch.setattr(folder, "check_image_files", refuse)
    monkeypatch.setattr(pipeline.StreamingDataset, "statistics", refuse)
    report = export_run(run, ["float32"], out=tmp_path / "out", latency_rounds=1, mediapipe=False)
    manifest = json.loads((tmp_path / "out" / "vgg_float32.json").read_text())
    normalization = manifest["input"]["normalization"]  # RGB photos: the per-channel statistics are folded
    recorded_mean = recorded["normalization"]["mean"]
    assert normalization.get("trained_mean", normalization["mean"])[: len(recorded_mean)] == recorded_mean
    assert report["test_images"] == 2  # round(24 / 12) held out, as in training
    make_photo_folder(tmp_path / "photos", classes=("horizontal",), per_class=13, seed=2)  # one file more
    with pytest.raises(ValueError, match=r"dataset changed .*files per class \[12, 12\] -> \[13, 12\]"):
        export_run(run, ["float32"], out=tmp_path / "out2", latency_rounds=1, mediapipe=False)


def test_a_run_written_before_the_data_spec_opens_the_same_test_images(small_vgg_run, tmp_path):
    """Older run folders (and export/fashion_mnist's run) have a dataset.json without "spec": config.yaml implies it."""
    import yaml

    from kerascnn.export.exporter import run_dataset
    from tests.helpers import copy_run

    run = copy_run(small_vgg_run[0], tmp_path)
    recorded = json.loads((run / "dataset.json").read_text())
    config = yaml.safe_load((run / "config.yaml").read_text())
    old = {k: v for k, v in recorded.items() if k not in ("spec", "skipped", "files_per_class")}
    old["reader"] = "load_dataset"
    now, before = (run_dataset(meta, config, 300, 50, run) for meta in (recorded, old))
    np.testing.assert_array_equal(now.splits["test"][0], before.splits["test"][0])
    np.testing.assert_array_equal(now.splits["train"][1], before.splits["train"][1])
    assert now.mean == before.mean == recorded["normalization"]["mean"]


def test_an_rgb_folder_run_exports_every_preset_with_one_mean_and_std(rgb_folder_export):
    """A run with per-channel statistics (an RGB folder) exports under every preset: one mean/std for all channels
    (what MediaPipe's NormalizationOptions and a uint8 input with q = pixel need), the per-channel statistics folded
    into the model, every variant agreeing with Keras."""
    root, report, _, _ = rgb_folder_export
    trained = json.loads((root / "run" / "dataset.json").read_text())["normalization"]
    assert len(set(trained["mean"])) == 3  # per-channel statistics, about 80/110/140
    assert set(report["variants"]) == {"float32", "float16", "dynamic", "int8", "int8-io", "uint8"}
    for variant, row in report["variants"].items():
        manifest = json.loads((root / "out" / row["file"].replace(".tflite", ".json")).read_text())
        normalization = manifest["input"]["normalization"]
        mean, std = normalization["mean"], normalization["std"]
        assert mean == [round(float(np.mean(trained["mean"])))] * 3 and std == [std[0]] * 3, variant
        assert normalization["fold"] == "shift" and normalization["trained_mean"] == trained["mean"]
        raw = metadata.metadata_of((root / "out" / row["file"]).read_bytes())
        expected = np.float32(mean if manifest["input"]["dtype"] == "float32" else [0] * 3)
        assert expected.tobytes() in raw  # the metadata's NormalizationOptions: one value for every channel
        assert row["agreement_with_keras"] >= (100.0 if variant in ("float32", "float16") else 85.0), (variant, row)
    uint8 = json.loads((root / "out" / "vgg_uint8.json").read_text())["input"]
    assert uint8["pixel_offset"] == 0 and uint8["quantization"]["zero_point"] == uint8["normalization"]["mean"][0]
    assert uint8["quantization"]["scale"] == pytest.approx(1 / uint8["normalization"]["std"][0], rel=1e-5)
    assert json.loads((root / "out" / "vgg_int8-io.json").read_text())["input"]["pixel_offset"] == -128
    assert "folded into the first convolution's kernel plus one per-channel ADD" in report["input"]


def test_calibration_spans_black_to_white_on_images_that_never_reach_them(rgb_folder_export):
    """The calibration's all-black and all-white images: on training images within 40..200 (most photos), the
    uint8 input still takes every pixel value as itself (q = pixel), and a white or black pixel is not clipped to
    the training range."""
    root, _, images, _ = rgb_folder_export
    assert images.min() >= 40 and images.max() <= 200  # the premise: no black, no white in the data
    manifest = json.loads((root / "out" / "vgg_uint8.json").read_text())
    runner = TFLiteClassifier((root / "out" / "vgg_uint8.tflite").read_bytes())
    mean, std = (np.float32(manifest["input"]["normalization"][k]) for k in ("mean", "std"))
    black_white = np.stack([np.zeros((16, 24, 3)), np.full((16, 24, 3), 255.0)]).astype(np.float32)
    scale, zero_point = manifest["input"]["quantization"]["scale"], manifest["input"]["quantization"]["zero_point"]
    quantized = np.round((black_white - mean) / std / scale) + zero_point
    assert quantized.min() == 0 and quantized.max() == 255  # black -> 0, white -> 255, nothing clipped
    float32 = TFLiteClassifier((root / "out" / "vgg_float32.tflite").read_bytes())
    np.testing.assert_allclose(runner((black_white - mean) / std), float32((black_white - mean) / std), atol=0.1)


def test_each_variant_is_opened_once_to_read_and_once_to_run(tmp_path, monkeypatch):
    """The audit, integer-input check, metadata, manifest, sparsity and op counts share one interpreter (no
    delegates); the evaluation opens the runner: two interpreters per variant, where there were eight."""
    from ai_edge_litert import interpreter as litert

    from kerascnn.export.normalization import SharedNormalization
    from kerascnn.export.writer import TestSet, TrainedModel, Variant, VariantWriter

    inputs = keras.Input((8, 8, 1))
    model = keras.Model(inputs, layers.GAPHead(3)(layers.ConvBNAct(4, 3)(inputs)))
    images = random_images((16, 8, 8, 1))
    tflite_model = convert(model, "int8", representative_images=images)
    dataset = {"labels": ["a", "b", "c"], "input_shape": [8, 8, 1], "normalization": {"mean": [0.0], "std": [1.0]}}
    trained = TrainedModel("tiny", model.count_params(), dataset, "random", 0, channels=1)
    predicted = model.predict(images, verbose=0).argmax(axis=1)
    identity = SharedNormalization(model, [0.0], [1.0], None, [0.0], [1.0])  # pixels are the model's input here
    test_set = TestSet(images, predicted, predicted)
    writer = VariantWriter(tmp_path, trained, test_set, images, identity, "test", log=lambda m: None)
    opened = []
    real_init = litert.Interpreter.__init__

    def counting_init(self, *args, **kwargs):
        opened.append(kwargs.get("experimental_op_resolver_type"))
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(litert.Interpreter, "__init__", counting_init)
    row = writer.write(Variant("int8", "tiny_int8", "int8", True, False), tflite_model)
    assert len(opened) == 2, opened
    assert row["ops"]["CONV_2D"] >= 1 and row["agreement_with_keras"] >= 50
    assert json.loads((tmp_path / "tiny_int8.json").read_text())["labels"] == ["a", "b", "c"]
