import pytest


@pytest.fixture(scope="session")
def exported(tmp_path_factory):
    """A briefly trained vgg, exported (RGB input, metadata) as float32, int8, int8-io and uint8, evaluated on the
    first 1,000 test images; no MediaPipe columns (tests/export/test_mediapipe.py runs MediaPipe itself)."""
    from kerascnn.export import export_run
    from kerascnn.train import resolve, train

    root = tmp_path_factory.mktemp("export")
    train(
        resolve(
            dict(
                model="vgg",
                limit=2048,
                epochs=4,
                batch_size=32,
                lr=3e-3,
                tensorboard=False,
                model_options=dict(widths=(16, 32, 64)),
                out=str(root / "run"),
            )
        )
    )
    report = export_run(
        root / "run",
        ["float32", "int8", "int8-io", "uint8"],
        calibration=200,
        out=root / "out",
        limit=1000,
        latency_rounds=1,
        mediapipe=False,
    )
    return root, report
