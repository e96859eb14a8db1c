"""kerascnn_edge.manifest: the manifest's one validation in Python, its JavaScript twin (export/web/manifest.js) on
the same bad manifests, and the edge tools' refusal of manifests and models that are not regular files (issue 35:
a FIFO hung predict, a folder gave an IsADirectoryError traceback). TensorFlow-free and fast: the shipped model."""

import copy
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kerascnn_edge.manifest import Manifest, ManifestError

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "export" / "fashion_mnist"
MANIFEST_JS = ROOT / "export" / "web" / "manifest.js"
GOOD = json.loads((SHIPPED / "vgg_uint8.json").read_text())


def changed(change):
    manifest = copy.deepcopy(GOOD)
    change(manifest)
    return manifest


def grey(manifest):
    manifest["input"]["shape"] = [1, 28, 28, 1]


# (name, manifest, the field named); JSON holds no NaN for JavaScript and cannot tell 28 from 28.0 once parsed, so
# neither is in the set (manifest.js's header says so)
BAD = [
    ("not an object", [1, 2], ""),
    ("no labels", changed(lambda m: m.pop("labels")), "labels"),
    ("labels a string", changed(lambda m: m.update(labels="T-shirt/top")), "labels"),
    ("labels empty", changed(lambda m: m.update(labels=[])), "labels"),
    ("labels not strings", changed(lambda m: m.update(labels=[1, 2])), "labels"),
    ("no input", changed(lambda m: m.pop("input")), "input.shape"),
    ("input a list", changed(lambda m: m.update(input=[])), "input.shape"),
    ("no shape", changed(lambda m: m["input"].pop("shape")), "input.shape"),
    ("shape of 3", changed(lambda m: m["input"].update(shape=[28, 28, 3])), "input.shape"),
    ("batch 2", changed(lambda m: m["input"].update(shape=[2, 28, 28, 3])), "input.shape"),
    ("2 channels", changed(lambda m: m["input"].update(shape=[1, 28, 28, 2])), "input.shape"),
    ("zero height", changed(lambda m: m["input"].update(shape=[1, 0, 28, 3])), "input.shape"),
    ("string width", changed(lambda m: m["input"].update(shape=[1, 28, "28", 3])), "input.shape"),
    ("boolean batch", changed(lambda m: m["input"].update(shape=[True, 28, 28, 3])), "input.shape"),
    ("no normalization", changed(lambda m: m["input"].pop("normalization")), "input.normalization.mean"),
    ("no mean", changed(lambda m: m["input"]["normalization"].pop("mean")), "input.normalization.mean"),
    ("mean of 2", changed(lambda m: m["input"]["normalization"].update(mean=[1.0, 2.0])), "input.normalization.mean"),
    ("mean a string", changed(lambda m: m["input"]["normalization"].update(mean="72.9")), "input.normalization.mean"),
    ("mean empty", changed(lambda m: m["input"]["normalization"].update(mean=[])), "input.normalization.mean"),
    ("mean boolean", changed(lambda m: m["input"]["normalization"].update(mean=[True])), "input.normalization.mean"),
    (
        "grey mean of 3",
        changed(lambda m: grey(m) or m["input"]["normalization"].update(mean=[1, 2, 3])),
        "input.normalization.mean",
    ),
    ("no std", changed(lambda m: m["input"]["normalization"].pop("std")), "input.normalization.std"),
    ("std zero", changed(lambda m: m["input"]["normalization"].update(std=[0.0])), "input.normalization.std"),
    ("std negative", changed(lambda m: m["input"]["normalization"].update(std=[1, -1, 1])), "input.normalization.std"),
    ("colour", changed(lambda m: m["input"].update(color="bgr")), "input.color"),
]
GOOD_TOO = [
    ("shipped", GOOD, None),
    ("one mean and std", changed(lambda m: m["input"]["normalization"].update(mean=[0], std=[1])), None),
    ("no colour", changed(lambda m: m["input"].pop("color")), None),
    ("null colour", changed(lambda m: m["input"].update(color=None)), None),
]


def python_field(manifest) -> str | None:
    try:
        Manifest.from_dict(manifest)
    except ManifestError as error:
        return error.field
    return None


def javascript_fields(manifests: list) -> list[str | None]:
    """export/web/manifest.js's checkManifest on each manifest, in node: the field it names, or None."""
    script = (
        f"import {{checkManifest, ManifestError}} from {json.dumps(MANIFEST_JS.as_uri())};"
        "import {readFileSync} from 'node:fs';"
        "const fields = JSON.parse(readFileSync(0, 'utf8')).map((m) => {"
        "  try { checkManifest(m); return null; }"
        "  catch (e) { if (!(e instanceof ManifestError)) throw e; return e.field; } });"
        "console.log(JSON.stringify(fields));"
    )
    done = subprocess.run(
        ["node", "--input-type=module", "-e", script], input=json.dumps(manifests), capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_python_refuses_each_bad_manifest_naming_the_field():
    assert [python_field(m) for _, m, _ in BAD + GOOD_TOO] == [field for _, _, field in BAD + GOOD_TOO]


@pytest.mark.skipif(shutil.which("node") is None, reason="no node (the page's validation runs in JavaScript)")
def test_the_pages_javascript_validation_equals_pythons_on_the_same_manifests():
    cases = BAD + GOOD_TOO
    got = dict(zip([name for name, _, _ in cases], javascript_fields([m for _, m, _ in cases])))
    assert got == {name: python_field(m) for name, m, _ in cases}


def test_a_grey_manifests_numbers_are_one_number_not_1_or_1():
    bad = changed(lambda m: grey(m) or m["input"]["normalization"].update(mean=[1, 2]))
    with pytest.raises(ManifestError, match=r"must be a list of 1 number, got") as caught:
        Manifest.from_dict(bad)
    assert "1 or 1" not in str(caught.value)


def predict(*args, timeout=60):
    return subprocess.run(
        [sys.executable, "-m", "kerascnn_edge.predict", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_predict_refuses_a_fifo_or_a_folder_as_manifest_at_once(tmp_path):
    os.mkfifo(tmp_path / "fifo.json")  # reading it waits for a writer: forever
    (tmp_path / "folder.json").mkdir()
    model, image = SHIPPED / "vgg_uint8.tflite", tmp_path / "x.png"
    done = predict("--model", model, "--manifest", tmp_path / "fifo.json", image, timeout=30)
    assert done.returncode == 2 and "fifo.json is not a regular file" in done.stderr, done.stderr
    done = predict("--model", model, "--manifest", tmp_path / "folder.json", image)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert "folder.json is a folder, not a file" in done.stderr


def test_predict_says_what_a_model_path_is_when_it_is_no_file(tmp_path):
    os.mkfifo(tmp_path / "fifo.tflite")
    (tmp_path / "folder.tflite").mkdir()
    for name, what in (("fifo.tflite", "is not a regular file"), ("folder.tflite", "is a folder, not a file")):
        done = predict("--model", tmp_path / name, tmp_path / "x.png", timeout=30)
        assert done.returncode == 2 and f"Model file {tmp_path / name} {what}" in done.stderr, done.stderr
        assert "does not exist" not in done.stderr
