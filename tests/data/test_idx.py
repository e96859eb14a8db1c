import gzip
import struct

import numpy as np
import pytest

from kerascnn.data import read_idx

pytestmark = pytest.mark.backend_portable


def write_idx(path, array, compress=True):
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.astype(np.uint8).tobytes()
    (gzip.open if compress else open)(path, "wb").write(data)


@pytest.mark.parametrize("compress", [True, False])
def test_round_trip(tmp_path, compress):
    array = np.random.default_rng(0).integers(0, 256, (5, 4, 3)).astype(np.uint8)
    path = tmp_path / ("a.idx.gz" if compress else "a.idx")
    write_idx(path, array, compress)
    np.testing.assert_array_equal(read_idx(path), array)


def test_truncated_file_is_named(tmp_path):
    path = tmp_path / "short.gz"
    array = np.zeros((5, 4), np.uint8)
    header = struct.pack(">BBBB", 0, 0, 0x08, 2) + struct.pack(">2I", 6, 4)
    gzip.open(path, "wb").write(header + array.tobytes())
    with pytest.raises(ValueError, match="short.gz is truncated or corrupt"):
        read_idx(path)


def test_foreign_file_is_rejected(tmp_path):
    path = tmp_path / "image.png.gz"
    gzip.open(path, "wb").write(b"\x89PNG\r\n\x1a\n....")
    with pytest.raises(ValueError, match="is not an IDX file"):
        read_idx(path)


def test_broken_gzip_is_named(tmp_path):
    path = tmp_path / "broken.gz"
    path.write_bytes(b"\x1f\x8b\x08\x00garbage")
    with pytest.raises(ValueError, match="Cannot read IDX file .*broken.gz"):
        read_idx(path)
