import pytest

from tests.helpers import copy_run


@pytest.fixture(scope="session")
def exported(tmp_path_factory, small_vgg_run):
    """A briefly trained vgg, exported (RGB input, metadata) as float32, int8, int8-io and uint8, evaluated on the
    first 1,000 test images; no MediaPipe columns and no TFLM section (tests/export/test_mediapipe.py and
    test_tflm.py run them)."""
    from kerascnn.export import export_run

    root = tmp_path_factory.mktemp("export")
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
