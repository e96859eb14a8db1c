"""export/web: the page classifies on the device in a real headless Chromium, offline, and agrees with predict.py.

The page is served from a temporary root that links export/web and export/fashion_mnist, as
`python3 -m http.server` from export/ would serve them; export/web/drive.mjs (playwright-core, Debian's
chromium) opens it and reports what it showed. The model is the shipped export/fashion_mnist/vgg_uint8.tflite
(the page's default), or the .tflite named by KERASCNN_WEB_MODEL (with its manifest beside it), served from
dev/ and passed as ?model=.
"""

import functools
import io
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.helpers import photo, save_photo

ROOT = Path(__file__).resolve().parents[2]
WEB = ROOT / "export" / "web"
SHIPPED = ROOT / "export" / "fashion_mnist" / "vgg_uint8.tflite"
CHROMIUM = Path("/usr/bin/chromium")
SELFTEST = 100


def node_problem() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if not CHROMIUM.exists():
        return f"no {CHROMIUM} (apt-get install -y chromium)"
    if not (shutil.which("node") and shutil.which("npm")):
        return "no node/npm (playwright-core needs Node.js >= 20)"
    major = int(subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip("v\n").split(".")[0])
    if major < 20:
        return f"node {major} is too old: playwright-core needs Node.js >= 20"
    return None


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """(page URL, model file on disk): a local server on a free port for a temporary root."""
    problem = node_problem()
    if problem:
        pytest.skip(f"browser test cannot run: {problem}")
    if not (WEB / "node_modules" / "@mediapipe" / "tasks-vision").is_dir():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=WEB, check=True, timeout=600)
    root = tmp_path_factory.mktemp("site")
    (root / "web").symlink_to(WEB)
    (root / "fashion_mnist").symlink_to(SHIPPED.parent)
    url = "/web/index.html"
    model = SHIPPED
    if os.environ.get("KERASCNN_WEB_MODEL"):
        model = Path(os.environ["KERASCNN_WEB_MODEL"]).resolve()
        (root / "dev").mkdir()
        for path in (model, model.with_suffix(".json")):
            shutil.copy(path, root / "dev" / path.name)
        url += f"?model=../dev/{model.name}"
    if not model.exists():
        pytest.fail(
            f"{model} does not exist: export the MediaPipe-ready uint8 model there, or set "
            "KERASCNN_WEB_MODEL to a .tflite with TFLite metadata and its manifest beside it."
        )
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}{url}", model
    server.shutdown()
    server.server_close()


def drive(**options) -> dict:
    """Run export/web/drive.mjs with these options; its JSON report."""
    run = subprocess.run(
        ["node", str(WEB / "drive.mjs"), json.dumps(options)], capture_output=True, text=True, timeout=240
    )
    assert run.stdout, f"drive.mjs printed nothing:\n{run.stderr}"
    report = json.loads(run.stdout)
    assert "error" not in report, f"{report['error']}\nbrowser console:\n" + "\n".join(report["console"])
    return report


@pytest.fixture(scope="module")
def cells(tmp_path_factory):
    """The bundled test images as separate PNG files, cut from samples.png exactly as the page cuts them."""
    out = tmp_path_factory.mktemp("cells")
    meta = json.loads((WEB / "samples.json").read_text())
    size, columns = meta["size"], meta["columns"]
    with Image.open(WEB / "samples.png") as sprite:
        for i in range(meta["count"]):
            x, y = (i % columns) * size, (i // columns) * size
            sprite.crop((x, y, x + size, y + size)).save(out / f"{i:03d}.png")
    return sorted(out.glob("*.png")), meta


def predict(model: Path, images: list[Path], k: int) -> list[list]:
    """kerascnn_edge.predict's top-k [label, probability] pairs, one list per image."""
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "kerascnn_edge.predict",
            "--model",
            str(model),
            "--json",
            "--top-k",
            str(k),
            *map(str, images),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return [json.loads(line)["top"] for line in run.stdout.splitlines()]


@pytest.fixture(scope="module")
def browser(site, cells, tmp_path_factory):
    """One page visit: the self-test on 100 images, a click on a sample (screenshot), two picked files, a drop,
    a camera frame.

    picked.png is test image 0 as RGB at its own 28 x 28 size, photo.png the same image enlarged 4 x (the page
    resizes it back), dropped.png test image 1; camera.png is what the model saw of Chromium's fake camera.
    """
    url, _ = site
    tmp = tmp_path_factory.mktemp("browser")
    files = {name: tmp / name for name in ("picked.png", "photo.png", "dropped.png", "phone.jpg")}
    with Image.open(cells[0][0]) as first, Image.open(cells[0][1]) as second:
        first.convert("RGB").save(files["picked.png"])
        first.convert("RGB").resize((112, 112), Image.BICUBIC).save(files["photo.png"])
        second.save(files["dropped.png"])
    save_photo(files["phone.jpg"], photo((640, 480), 1), orientation=6)  # a portrait phone photo, stored rotated
    (tmp / "notes.png").write_text("not an image")
    report = drive(
        url=url,
        selftest=SELFTEST,
        files=[str(files["picked.png"]), str(files["photo.png"]), str(files["phone.jpg"])],
        bad=str(tmp / "notes.png"),
        drop=str(files["dropped.png"]),
        camera=str(tmp / "camera.png"),
        screenshot=str(tmp / "shot.png"),
        chromium=str(CHROMIUM),
    )
    assert report["results"], f"{report['selftest']}\nbrowser console:\n" + "\n".join(report["console"])
    files["camera.png"] = tmp / "camera.png"
    return report, files, tmp / "shot.png"


def test_selftest_top1_equals_predict_py_on_100_images(browser, site, cells):
    report, _, _ = browser
    images, meta = cells
    results = report["results"]["results"]
    assert len(results) == SELFTEST
    expected = predict(site[1], images[:SELFTEST], k=1)
    for i, (got, (want,)) in enumerate(zip(results, expected)):
        assert got["label"] == want[0], f"test image {i}: the page says {got['label']}, predict.py {want[0]}"
        assert got["score"] == pytest.approx(want[1], abs=0.01), f"test image {i}"
    correct = sum(r["index"] == t for r, t in zip(results, meta["classes"]))
    assert report["selftest"] == f"selftest: {correct}/{SELFTEST} correct"
    assert correct >= 80, "a Fashion-MNIST model should get most of the first 100 test images right"
    assert report["results"]["medianMs"] > 0


def test_page_works_offline(browser):
    report, _, _ = browser
    assert report["offsite"] == [], "the page requested files from outside its own server"
    assert not [line for line in report["console"] if line.startswith("pageerror")]


def test_runtime_sends_no_usage_metrics(site):
    """@mediapipe/tasks-vision >= 1.0 POSTs usage metrics to this endpoint 60 s after a page loads."""
    bundle = (WEB / "node_modules" / "@mediapipe" / "tasks-vision" / "vision_bundle.mjs").read_text()
    assert "odml.pa.googleapis.com" not in bundle, "this MediaPipe release sends usage metrics: keep 0.10.35"


def assert_top3_agrees(shown: dict, expected: list):
    """The page's top 3 (labels, scores in %) are predict.py's 3 best classes; equal scores may swap places."""
    probability = dict(expected)  # predict.py's probability of every class
    assert shown["labels"][0] == expected[0][0]
    for label, score in zip(shown["labels"], shown["scores"]):
        assert float(score.rstrip(" %")) == pytest.approx(100 * probability[label], abs=0.6), label
    assert float(shown["scores"][2].rstrip(" %")) >= 100 * expected[2][1] - 0.6


def test_picked_dropped_and_camera_images_show_top3_latency_and_model(browser, site):
    report, files, shot = browser
    (picked, photo, _), dropped, camera = report["picked"], report["dropped"], report["camera"]
    names = ["picked.png", "photo.png", "dropped.png", "camera.png"]
    expected = dict(zip(names, predict(site[1], [files[name] for name in names], k=10)))
    assert_top3_agrees(picked, expected["picked.png"])
    assert_top3_agrees(dropped, expected["dropped.png"])
    assert_top3_agrees(camera, expected["camera.png"])
    assert photo["labels"][0] == expected["photo.png"][0][0], "the page resizes a larger image as predict.py does"
    for shown in (picked, photo, dropped, camera):
        assert all(re.fullmatch(r"\d+\.\d %", score) for score in shown["scores"])
        assert re.fullmatch(r"inference: \d+\.\d\d ms", shown["latency"])
        assert site[1].name in shown["model"]
        assert shown["input"] == [28, 28]
    with Image.open(shot) as image:  # the screenshot after a click on a bundled image
        assert image.width >= 600 and image.height >= 400


def predict_py_pixels(path, size):
    """kerascnn_edge.predict's `load_pixels` (EXIF orientation, Pillow's bilinear resize) of an RGB model's input."""
    from kerascnn_edge.predict import load_pixels

    with Image.open(path) as image:
        return load_pixels(image, size, 3)


def test_the_page_resizes_and_orients_as_predict_py(browser):
    """The pixels the page hands to MediaPipe: the rotated 640x480 phone photo turned upright by its EXIF tag and
    the 112x112 image, both shrunk to 28x28 with Pillow's bilinear filter, as predict.py (and training) do."""
    import base64

    report, files, _ = browser
    for shown, name in zip(report["picked"][1:], ("photo.png", "phone.jpg")):
        page = np.asarray(Image.open(io.BytesIO(base64.b64decode(shown["inputPng"].split(",")[1]))).convert("RGB"))
        edge = predict_py_pixels(files[name], (28, 28))
        assert np.abs(page.astype(int) - edge).max() <= 1, name


def test_a_file_that_is_not_an_image_is_named_and_the_page_goes_on(browser):
    report, _, _ = browser
    assert report["bad"].startswith("error: notes.png is not an image this browser can decode (")
    assert report["bad"].endswith("); pick a PNG, JPEG or WebP file.")
    assert report["dropped"]["labels"], "the next image still classifies"


def test_missing_or_unusable_model_is_named_on_the_page(site):
    page = site[0].split("?")[0]
    report = drive(url=page + "?model=../fashion_mnist/no_such_model.tflite", selftest=3, chromium=str(CHROMIUM))
    assert report["selftest"] == (
        "error: ../fashion_mnist/no_such_model.tflite: HTTP 404. Pass ?model=PATH (relative to this page)."
    )
    assert report["results"] is None
    report = drive(url=page + "?model=samples.png", selftest=3, chromium=str(CHROMIUM))
    assert report["selftest"] == (
        "error: MediaPipe cannot use samples.png (INVALID_ARGUMENT: The model is not a "
        "valid Flatbuffer buffer). It must be a .tflite with TFLite metadata (labels, "
        "normalization) and a 3-channel input: use a model exported with its metadata."
    )


def test_bundled_samples_are_the_first_100_test_images(tmp_path):
    """make_samples.py rebuilds samples.png and samples.json from Debian's Fashion-MNIST files."""
    run = subprocess.run(
        [sys.executable, str(WEB / "make_samples.py"), "--out", str(tmp_path)], capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    with Image.open(WEB / "samples.png") as shipped, Image.open(tmp_path / "samples.png") as rebuilt:
        np.testing.assert_array_equal(np.asarray(shipped), np.asarray(rebuilt))
    assert json.loads((tmp_path / "samples.json").read_text()) == json.loads((WEB / "samples.json").read_text())


def test_make_samples_names_missing_dataset(tmp_path):
    run = subprocess.run(
        [sys.executable, str(WEB / "make_samples.py"), "--idx-dir", str(tmp_path), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 2 and run.stderr.startswith("error: No t10k-images-idx3-ubyte(.gz) in ")
    assert "Traceback" not in run.stderr
