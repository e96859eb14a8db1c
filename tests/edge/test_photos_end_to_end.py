"""A user's phone photos, all the way to MediaPipe: a folder of generated phone-like RGB JPEGs (640x480 and 480x640,
three of four stored rotated with an EXIF orientation tag, some in nested folders; a horizontal bar, a vertical bar
and a disc, classes that a 90-degree rotation confuses) trains at 64x64, exports float32 and uint8, and MediaPipe's
ImageClassifier, given the upright full-size photos (it resizes them itself), scores within 3 points of the Keras
test accuracy. Training that ignored the orientation tag would see half of the bars turned into the other class."""

import json

import keras
import numpy as np
import pytest

from tests.edge.test_mediapipe import edge_python  # noqa: F401  (the .venv-edge fixture)

if keras.backend.backend() != "tensorflow":
    pytest.skip("export runs on the TensorFlow backend", allow_module_level=True)


@pytest.fixture(scope="module")
def photo_run(tmp_path_factory, edge_python):  # noqa: F811
    """(root, folder's {path: (label, upright pixels)}, export report) of the photos' run and its export."""
    from kerascnn.export import export_run
    from kerascnn.train import resolve, train
    from tests.helpers import make_photo_folder

    root = tmp_path_factory.mktemp("photos_e2e")
    written = make_photo_folder(root / "photos", per_class=40, seed=3)
    train(
        resolve(
            dict(
                data_dir=str(root / "photos"),
                image_size=[64, 64],
                test_fraction=0.3,
                model="lenet5",  # no batch norm: its running statistics would not settle in these few steps
                epochs=6,
                batch_size=16,
                tensorboard=False,
                out=str(root / "run"),
            )
        )
    )
    report = export_run(root / "run", ["float32", "uint8"], calibration=64, out=root / "out", latency_rounds=1)
    return root, written, report


def test_the_folder_is_what_a_phone_gives(photo_run):
    """The premise: most photos are stored rotated with an orientation tag, both orientations, nested files."""
    from PIL import Image

    _, written, _ = photo_run
    orientations, sizes = [], set()
    for path in written:
        with Image.open(path) as image:
            orientations.append(image.getexif().get(0x0112, 1))
            sizes.add(image.size)
    assert np.mean(np.array(orientations) != 1) > 0.5 and {6, 8} <= set(orientations)
    assert sizes == {(640, 480), (480, 640)}
    assert any("/sub/" in path for path in written)


def test_mediapipe_given_the_full_size_upright_photos_scores_as_keras(photo_run):
    """Keras learns the classes (it could not if training ignored the orientation tag: half of each bar class would
    be the other bar), and every client given the test photos at their original size, upright, scores within 3
    points of Keras: predict.py, MediaPipe with the full-size image (its own resize), MediaPipe with the image
    pre-resized by the app with the training filter."""
    root, _, report = photo_run
    keras_accuracy = report["keras"]["accuracy"]
    assert report["test_images"] >= 30
    assert keras_accuracy >= 90.0, report["keras"]
    assert set(report["variants"]) == {"float32", "uint8"}
    for variant, row in report["variants"].items():
        checked = row["mediapipe"]
        assert checked["supported"], (variant, checked)
        files = checked["files"]
        assert files["images"] == report["test_images"]
        for client in ("predict_py", "mediapipe_full_size", "mediapipe_pre_resized"):
            assert abs(files[client] - keras_accuracy) <= 3.0, (variant, client, files, keras_accuracy)
    markdown = (root / "out" / "report.md").read_text()
    assert "| uint8 | " in markdown.split("## The test images as files, at their original size")[1]
    assert (
        json.loads((root / "out" / "report.json").read_text())["variants"]["uint8"]["mediapipe"]["files"]
        == (report["variants"]["uint8"]["mediapipe"]["files"])
    )


def test_check_mediapipe_names_a_bad_files_list(photo_run, edge_python, tmp_path):  # noqa: F811
    """--files that is no JSON list of [path, class index], or names a missing photo: one line naming it, exit 2."""
    import os
    import subprocess

    root, _, _ = photo_run
    np.savez(tmp_path / "test.npz", images=np.zeros((1, 64, 64, 3), np.uint8), labels=np.zeros(1, int))
    (tmp_path / "bad.json").write_text('{"not": "a list"}')
    (tmp_path / "missing.json").write_text(json.dumps([[str(tmp_path / "gone.jpg"), 0]]))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    for files, message in (
        ("bad.json", "is not a readable JSON list of [image path, class index]"),
        ("missing.json", "1 image(s) that do not exist, first "),
    ):
        done = subprocess.run(
            [str(edge_python), "-m", "kerascnn_edge.check_mediapipe", "--data", str(tmp_path / "test.npz")]
            + ["--files", str(tmp_path / files), str(root / "out" / "lenet5_float32.tflite")],
            capture_output=True,
            text=True,
            timeout=300,
            env=env,
        )
        assert done.returncode == 2 and message in done.stderr and done.stderr.count("error:") == 1, done.stderr
