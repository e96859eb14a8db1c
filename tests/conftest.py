"""Fixtures shared across test folders."""

import pytest

SMALL_VGG = dict(
    model="vgg",
    limit=2048,
    epochs=4,
    batch_size=32,
    lr=3e-3,
    tensorboard=False,
    model_options=dict(widths=(16, 32, 64)),
)


@pytest.fixture(scope="session")
def small_vgg_run(tmp_path_factory):
    """(run directory, metrics) of a vgg trained briefly on 2,048 Fashion-MNIST images (4 epochs, 256 steps: enough
    for batch norm's running averages, momentum 0.99, to follow the weights). Trained once per session; tests that
    change files copy it first (`tests.helpers.copy_run`)."""
    from kerascnn.train import resolve, train

    run_dir = tmp_path_factory.mktemp("small_vgg") / "run"
    metrics = train(resolve(dict(SMALL_VGG, out=str(run_dir))))
    return run_dir, metrics
