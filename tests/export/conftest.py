import pytest

from tests.helpers import copy_run, once_per_session


@pytest.fixture(scope="session")
def exported(request, small_vgg_run):
    """A briefly trained vgg, exported (RGB input, metadata) as float32, int8, int8-io and uint8, evaluated on the
    first 1,000 test images; no MediaPipe columns and no TFLM section (tests/edge/test_mediapipe.py and
    test_tflm.py run them)."""
    from kerascnn.export import export_run

    def build(root):
        copy_run(small_vgg_run[0], root)
        report = export_run(
            root / "run",
            ["float32", "int8", "int8-io", "uint8"],
            calibration=200,
            out=root / "out",
            limit=1000,
            latency_rounds=1,
            mediapipe=False,
            tflm_images=0,
        )
        return root, report

    return once_per_session(request, "export", build)


@pytest.fixture(scope="session")
def rgb_folder_export(request):
    """A run trained briefly (1 epoch, 8 steps) on a folder of RGB PNGs (16x24, pixels only in 40..200, channel means
    about 80/110/140: per-channel statistics), exported under every preset: (root, report, folder images, labels).
    The export folds the per-channel normalization into the model (kerascnn.export.normalization)."""
    from kerascnn.export import PRESETS, export_run
    from kerascnn.train import resolve, train
    from tests.helpers import colour_shapes, write_image_folder

    def build(root):
        images, labels = colour_shapes(144)
        write_image_folder(root / "photos", images, labels)
        train(
            resolve(
                dict(
                    data_dir=str(root / "photos"),
                    model="vgg",
                    model_options=dict(widths=(8, 8, 8)),
                    epochs=1,
                    batch_size=16,
                    tensorboard=False,
                    out=str(root / "run"),
                )
            )
        )
        report = export_run(
            root / "run", list(PRESETS), calibration=64, out=root / "out", latency_rounds=1, mediapipe=False
        )
        return root, report, images, labels

    return once_per_session(request, "rgb_folder", build)
