"""The `Source` protocol: every reader lists its items, their labels, the class names and the input shape, and
decodes one item, the same way; and a recorded run replays to the same splits through `kerascnn.data.open`."""

import json

import numpy as np
import pytest

from kerascnn.data import DataSpec, open
from kerascnn.data.folder import FolderSource
from kerascnn.data.idx import IdxSource
from kerascnn.data.source import Listing, Source
from kerascnn.data.tfds_source import TfdsSource
from tests.data.test_stream import write_idx, write_images

pytestmark = pytest.mark.backend_portable


def folder_source(tmp_path):
    write_images(tmp_path / "photos", classes=("a", "b"), per_class=5, size=(6, 4))
    return FolderSource(tmp_path / "photos", image_size=(8, 8))


def idx_source(tmp_path):
    rng = np.random.default_rng(0)
    for split, n in (("train", 12), ("test", 4)):
        write_idx(tmp_path / f"{split}-images.gz", rng.integers(0, 256, (n, 7, 7)))
        write_idx(tmp_path / f"{split}-labels.gz", np.arange(n) % 3)
    images = {s: tmp_path / f"{s}-images.gz" for s in ("train", "test")}
    labels = {s: tmp_path / f"{s}-labels.gz" for s in ("train", "test")}
    return IdxSource(images, labels, ["x", "y", "z"], name="tiny")


@pytest.fixture
def tfds_source(monkeypatch):
    tfds = pytest.importorskip("tensorflow_datasets")
    from kerascnn.data import tfds_source

    monkeypatch.setattr(tfds_source, "online", lambda: True)  # the mock "downloads" nothing
    with tfds.testing.mock_data(num_examples=6):  # offline: random examples with mnist's features
        yield TfdsSource("mnist", image_size=(9, 9))


@pytest.mark.parametrize("kind", ["folder", "idx", "tfds"])
def test_every_reader_lists_and_decodes_the_same_way(kind, tmp_path, request):
    source = (
        request.getfixturevalue("tfds_source")
        if kind == "tfds"
        else {"folder": folder_source, "idx": idx_source}[kind](tmp_path)
    )
    assert isinstance(source, Source) and source.name and source.where
    listing = source.list()
    assert isinstance(listing, Listing) and len(listing.classes) >= 2
    assert len(listing.input_shape) == 3 and listing.input_shape == tuple(int(v) for v in listing.input_shape)
    for part in (listing.train, listing.test):
        if part is None:  # no test split of its own: the pipeline holds one out
            continue
        items = list(part.source().take(part.count + 1).as_numpy_iterator())
        assert len(items) == part.count > 0
        if part.labels is not None:
            assert len(part.labels) == part.count and part.labels.dtype == np.int64
        if part.files is not None:
            assert len(part.files) == part.count
        image, label = (np.asarray(v) for v in part.decode(*items[0]))
        assert image.dtype == np.uint8 and image.shape == listing.input_shape
        assert label.dtype == np.int64 and 0 <= label < len(listing.classes)
        if part.labels is not None:
            assert label == part.labels[0]


def test_open_takes_any_source_and_splits_it_once(tmp_path):
    data = open(DataSpec(validation_fraction=0.25, seed=2), source=idx_source(tmp_path), stats_images=None)
    assert [data.count(s) for s in ("train", "validation", "test")] == [9, 3, 4]
    assert data.name == "tiny" and data.test_source == "the test IDX files" and data.input_shape == (7, 7, 1)


def test_a_recorded_spec_replays_to_identical_splits(tmp_path):
    """dataset.json's "spec" and statistics, read back through `open(..., recorded=...)`, give the splits that
    training read, file for file and in order, without re-checking the files or recomputing the statistics."""
    write_images(tmp_path / "photos", per_class=10)
    spec = DataSpec(data_dir=str(tmp_path / "photos"), image_size=(8, 8), seed=3, limit=12)
    trained = open(spec)
    recorded = {**trained.metadata(), "spec": spec.to_json(), "skipped": trained.skipped}
    recorded = json.loads(json.dumps(recorded))  # as dataset.json holds it
    replayed = open(DataSpec.from_run(recorded, {}), recorded=recorded)
    assert replayed.mean == trained.mean and replayed.std == trained.std
    assert replayed.input_shape == trained.input_shape and replayed.input_path == "stream"
    limited = replayed.limited(spec.limit, spec.seed)  # a replay reads the whole data; `limit` is the caller's
    for split in ("train", "validation", "test"):
        assert limited.splits[split].files == trained.splits[split].files
        np.testing.assert_array_equal(limited.arrays(split)[0], trained.arrays(split)[0])
