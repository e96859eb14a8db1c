"""kerascnn.data.folder: Keras's folder rules (nested files count under their class), plus refusing what would break
later (names that cannot be a label line, empty classes, symlink loops), camera JPEGs that are valid, undecodable
files named or skipped and counted, and a seeded class-balanced --limit."""

import io
import os
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from kerascnn.data import folder, stream
from kerascnn.data.pipeline import DecodeError, stratified_subset
from tests.data.test_stream import write_images
from tests.helpers import raises_on_command_line

pytestmark = pytest.mark.backend_portable
ALL = dict(validation_fraction=0.0, test_fraction=0.0)


def test_files_in_nested_folders_count_under_their_class_and_hidden_files_do_not(tmp_path):
    write_images(tmp_path, classes=("a", "b"), per_class=2)
    write_images(tmp_path / "a" / "sub" / "deeper", classes=("x",), per_class=3)  # a/sub/deeper/x/000.png ...
    (tmp_path / "a" / "._000.png").write_bytes(b"macOS resource fork")
    write_images(tmp_path / "b" / ".thumbnails", classes=("t",), per_class=2)
    paths, labels, classes = folder.list_image_folder(tmp_path)
    assert classes == ["a", "b"] and labels.tolist() == [0] * 5 + [1] * 2
    assert sum("/a/sub/deeper/x/" in p for p in paths) == 3 and not any("/." in p for p in paths)
    data = stream.open_image_folder(tmp_path, **ALL)
    assert data.count("train") == 7


@pytest.mark.parametrize("name,why", [("two\nlines", "newline"), ("   ", "only whitespace"), ("tab\there", "control")])
def test_a_folder_name_that_cannot_be_a_label_line_is_refused_naming_it(tmp_path, name, why):
    write_images(tmp_path, classes=("a", name), per_class=1)
    with pytest.raises(ValueError, match=f"cannot be a label .*{why}") as error:
        folder.list_image_folder(tmp_path)
    assert repr(str(tmp_path / name)) in str(error.value)


def test_an_empty_class_folder_is_refused_naming_it(tmp_path):
    write_images(tmp_path, classes=("a", "b"), per_class=2)
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "notes.txt").write_text("no images here")
    with pytest.raises(ValueError, match=r"Class folder .*/empty holds no image files"):
        folder.list_image_folder(tmp_path)


def test_a_class_whose_every_file_is_bad_is_refused_with_skip_bad(tmp_path):
    write_images(tmp_path, classes=("a", "b"), per_class=2)
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "x.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(ValueError, match=r"/c hold no image that can be decoded"):
        stream.open_image_folder(tmp_path, skip_bad=True, **ALL)


@pytest.mark.parametrize("skip_bad", [False, True])
@pytest.mark.parametrize("kind", ["file", "pair", "folder"])
def test_a_symlink_loop_is_a_one_line_error_naming_it(tmp_path, kind, skip_bad):
    write_images(tmp_path, classes=("a", "b"), per_class=2)
    if kind == "file":
        os.symlink(tmp_path / "a" / "loop.png", tmp_path / "a" / "loop.png")
    elif kind == "pair":
        os.symlink(tmp_path / "b" / "two.png", tmp_path / "a" / "one.png")
        os.symlink(tmp_path / "a" / "one.png", tmp_path / "b" / "two.png")
    else:
        os.symlink(tmp_path / "a", tmp_path / "a" / "again")
    with pytest.raises(ValueError, match="symbolic link loop") as error:
        stream.open_image_folder(tmp_path, skip_bad=skip_bad, **ALL)
    assert len(str(error.value).splitlines()) == 1 and str(tmp_path) in str(error.value)


def test_a_dangling_link_is_a_bad_file(tmp_path):
    write_images(tmp_path, classes=("a", "b"), per_class=2)
    os.symlink(tmp_path / "gone.png", tmp_path / "a" / "dangling.png")
    with pytest.raises(ValueError, match=r"dangling\.png"):
        stream.open_image_folder(tmp_path, **ALL)
    assert stream.open_image_folder(tmp_path, skip_bad=True, **ALL).skipped == [str(tmp_path / "a" / "dangling.png")]


def test_camera_jpegs_mpo_and_bytes_after_the_end_marker_are_valid(tmp_path):
    write_images(tmp_path, classes=("a", "b"), per_class=2, suffix=".jpg")
    first, second = (np.full((12, 10, 3), v, np.uint8) for v in (40, 200))
    Image.fromarray(first).save(
        tmp_path / "a" / "mpo.jpg", "MPO", save_all=True, append_images=[Image.fromarray(second)]
    )
    with Image.open(tmp_path / "a" / "mpo.jpg") as image:
        assert image.format == "MPO"
    good = (tmp_path / "b" / "000.jpg").read_bytes()
    (tmp_path / "b" / "trailer.jpg").write_bytes(good + b"\x00maker notes after the end-of-image marker" * 4)
    (tmp_path / "b" / "cut.jpg").write_bytes(good[:-10])  # really truncated: still refused
    with pytest.raises(ValueError, match=r"1 image file\(s\) cannot be decoded: .*cut\.jpg \(truncated JPEG"):
        stream.open_image_folder(tmp_path, **ALL)
    (tmp_path / "b" / "cut.jpg").unlink()
    data = stream.open_image_folder(tmp_path, **ALL)
    decoded = dict(zip(data.splits["train"].files, data.arrays("train")[0]))
    assert np.abs(decoded[str(tmp_path / "a" / "mpo.jpg")].astype(int) - 40).max() <= 2  # the first frame
    assert str(tmp_path / "b" / "trailer.jpg") in decoded and not data.skipped


def test_jpeg_completeness_skips_the_exif_thumbnail(tmp_path):
    """An EXIF thumbnail holds its own end-of-image marker: a photo cut after it is still truncated."""
    thumbnail = io.BytesIO()
    Image.new("RGB", (8, 8), (9, 9, 9)).save(thumbnail, "JPEG")
    exif = Image.Exif()
    exif[0x0112] = 1
    photo = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3)).astype(np.uint8)).save(
        photo, "JPEG", exif=exif.tobytes() + thumbnail.getvalue()
    )
    data = photo.getvalue()
    assert data.count(b"\xff\xd9") >= 2
    (tmp_path / "whole.jpg").write_bytes(data)
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) - 200])
    assert folder.jpeg_complete(str(tmp_path / "whole.jpg")) and not folder.jpeg_complete(str(tmp_path / "cut.jpg"))


def undecodable_png(path):
    """A PNG whose every chunk has a correct CRC (so Pillow's header check passes) but whose pixel data is not
    zlib data: only decoding finds it."""
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((12, 10, 3), np.uint8)).save(buffer, "PNG")
    raw, out, position = buffer.getvalue(), bytearray(buffer.getvalue()[:8]), 8
    while position < len(raw):
        (length,), kind = struct.unpack(">I", raw[position : position + 4]), raw[position + 4 : position + 8]
        body = raw[position + 8 : position + 8 + length]
        if kind == b"IDAT":
            body = b"this is not zlib data at all" * 2
        out += struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        position += 12 + length
    path.write_bytes(bytes(out))
    return path


def test_a_png_that_passes_the_header_check_but_cannot_be_decoded_is_named_or_skipped_and_counted(tmp_path):
    write_images(tmp_path, classes=("a", "b"), per_class=3)
    bad = undecodable_png(tmp_path / "b" / "broken.png")
    assert folder.check_image_file(str(bad))[0] is None  # the header check cannot see it
    with pytest.raises(DecodeError, match=r"1 image file\(s\) pass the header check but cannot be decoded: .*broken"):
        stream.open_image_folder(tmp_path, **ALL)
    data = stream.open_image_folder(tmp_path, skip_bad=True, **ALL)
    assert data.skipped == [str(bad)] and data.count("train") == 6 and len(data.arrays("train")[0]) == 6


def test_an_undecodable_file_met_while_streaming_is_named(tmp_path):
    """Outside the statistics sample (here: the test folder), the file is met in training or evaluation."""
    write_images(tmp_path / "train", classes=("a", "b"), per_class=3)
    write_images(tmp_path / "test", classes=("a", "b"), per_class=1)
    undecodable_png(tmp_path / "test" / "a" / "broken.png")
    data = stream.open_image_folder(tmp_path / "train", test_dir=tmp_path / "test", cache_bytes=None, **ALL)
    with pytest.raises(DecodeError, match=r"test/a/broken\.png"):
        with data.naming_bad_files():
            list(data.batches("test", 2))


def test_limit_takes_a_seeded_class_balanced_subset(tmp_path):
    write_images(tmp_path, classes=("a", "b", "c"), per_class=10)
    data = stream.open_image_folder(tmp_path, **ALL)
    limited = data.limited(9, seed=1)
    files = limited.splits["train"].files
    assert np.bincount(limited.splits["train"].labels).tolist() == [3, 3, 3]
    assert limited.arrays("train")[1].tolist() == limited.splits["train"].labels.tolist()
    assert data.limited(9, seed=1).splits["train"].files == files != data.limited(9, seed=2).splits["train"].files
    assert np.bincount(data.limited(10, seed=0).splits["train"].labels).tolist() in ([4, 3, 3], [3, 4, 3], [3, 3, 4])


def test_a_test_folder_missing_a_class_keeps_the_labels_of_the_others(tmp_path):
    write_images(tmp_path / "train", classes=("a", "b", "c"), per_class=2)
    write_images(tmp_path / "test", classes=("a", "c"), per_class=2)
    paths, labels, classes = folder.list_image_folder(tmp_path / "test", ["a", "b", "c"])
    assert classes == ["a", "b", "c"] and labels.tolist() == [0, 0, 2, 2]
    data = stream.open_image_folder(tmp_path / "train", test_dir=tmp_path / "test", validation_fraction=0.0)
    for path, label in zip(data.splits["test"].files, data.splits["test"].labels):
        assert f"/test/{data.labels[label]}/" in path


def test_limit_gives_the_extra_images_to_seeded_classes_not_always_the_first():
    labels = np.repeat(np.arange(10), 10)
    extras = set()
    for seed in range(8):
        counts = np.bincount(labels[stratified_subset(labels, 15, seed)], minlength=10)
        assert sorted(counts.tolist()) == [1] * 5 + [2] * 5
        extras.add(tuple(np.flatnonzero(counts == 2)))
    assert len(extras) > 4  # the classes' turn order is seeded, not label order


def test_a_file_given_as_the_folder_is_called_a_file(tmp_path):
    (tmp_path / "images.zip").write_bytes(b"PK")
    with pytest.raises(NotADirectoryError, match=r"images\.zip is a file, not a folder"):
        folder.list_image_folder(tmp_path / "images.zip")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        folder.list_image_folder(tmp_path / "missing")


def test_class_folders_that_differ_only_by_blanks_around_the_name_are_refused_naming_them(tmp_path):
    write_images(tmp_path, classes=("a", "a ", "b"), per_class=1)
    with pytest.raises(ValueError, match="differ only by blanks") as error:
        folder.list_image_folder(tmp_path)
    assert repr(str(tmp_path / "a")) in str(error.value) and repr(str(tmp_path / "a ")) in str(error.value)


def test_color_converts_a_folder_and_is_carried_from_the_flag_to_the_spec(tmp_path):
    from kerascnn.data.spec import DataSpec
    from kerascnn.train.__main__ import parser
    from kerascnn.train.finetune import FineTuneError, check_normalization

    write_images(tmp_path, classes=("a", "b"), per_class=2)
    values = vars(parser().parse_args(["--data-dir", str(tmp_path), "--color", "grayscale"]))
    spec = DataSpec.from_settings({k: v for k, v in values.items() if v is not None}).check()
    assert spec.color_mode == "grayscale"
    assert stream.open(spec).input_shape[-1] == 1  # RGB images converted
    with raises_on_command_line("--color grayscale converts an image folder"):
        DataSpec(color_mode="grayscale").check()
    with pytest.raises(FineTuneError, match="Pass --color grayscale to convert"):
        check_normalization({"mean": [0.5], "std": [0.2]}, 3, "--init-from")
