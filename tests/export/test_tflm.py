"""TensorFlow Lite Micro as a tested target: kerascnn_edge.tflm.check (in .venv-edge, no TensorFlow) runs the shipped
integer models in TFLM's Python interpreter (the reference kernels a board compiles) on 200 test images, finds the
smallest arena, checks the ops, and writes the C++ files a firmware compiles; the export puts the budget in its
report and manifests."""

import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys

import keras
import numpy as np
import pytest

from kerascnn.export import tflm as tflm_report
from tests.export.test_export import ROOT
from tests.helpers import copy_run

if keras.backend.backend() != "tensorflow":
    pytest.skip("export runs on the TensorFlow backend", allow_module_level=True)

from kerascnn_edge import files as edge_files  # noqa: E402  (TensorFlow-free)
from kerascnn_edge.tflm import arena as arenas  # noqa: E402  (imports without tflite-micro)
from kerascnn_edge.tflm import check as tflm_check  # noqa: E402

sys.path.insert(0, str(ROOT / "export"))
import edge_venv  # noqa: E402  (export/edge_venv.py: builds .venv-edge from this checkout)

SHIPPED = ROOT / "export" / "fashion_mnist"
VARIANTS = ("vgg_int8-io", "vgg_uint8")
IMAGES = 200
MCU_RAM = 40 * 1024  # less than the shipped VGG's arena with its margin: the "does not fit" sentence
# the MicroMutableOpResolver calls each shipped model needs, written out by hand (not from ops.py's rule)
RESOLVER = {
    "vgg_int8-io": ["AddConv2D", "AddMaxPool2D", "AddMean", "AddSoftmax"],
    "vgg_uint8": ["AddQuantize", "AddConv2D", "AddMaxPool2D", "AddMean", "AddSoftmax"],
}
EDGE_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


@pytest.fixture(scope="session")
def tflm_python():
    """.venv-edge's Python, skipping when tflite-micro is not in it (its wheels are for Linux x86-64 only)."""
    python = edge_venv.ensure()
    done = subprocess.run([str(python), "-c", "import tflite_micro"], capture_output=True, text=True, timeout=120)
    if done.returncode:
        pytest.skip(
            "tflite-micro is not installed in .venv-edge (kerascnn-edge[tflm] installs it on Linux x86-64 only, "
            f"where its wheels exist): {done.stderr.strip().splitlines()[-1] if done.stderr.strip() else ''}"
        )
    return python


def run_check(python, *args, timeout=1200):
    return subprocess.run(
        [str(python), "-m", "kerascnn_edge.tflm.check", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=EDGE_ENV,
    )


@pytest.fixture(scope="module")
def shipped(tflm_python, tmp_path_factory):
    """check.py on the shipped int8-io and uint8 files: the first 200 test images, C files, --mcu-ram 40K."""
    from kerascnn.data import load_dataset

    images, labels = (a[:IMAGES] for a in load_dataset("fashion_mnist").splits["test"])
    tmp = tmp_path_factory.mktemp("tflm")
    np.savez(tmp / "test.npz", images=images, labels=labels)
    models = [SHIPPED / f"{name}.tflite" for name in VARIANTS]
    done = run_check(tflm_python, "--data", tmp / "test.npz", "--mcu-ram", MCU_RAM, "--c-out", tmp / "c", *models)
    assert done.returncode == 0, done.stderr[-3000:]
    return tmp, dict(zip(VARIANTS, json.loads(done.stdout)["results"]))


def test_tflm_gives_ai_edge_litert_reference_top1_on_every_image(shipped):
    _, results = shipped
    for name, result in results.items():
        assert result["supported"] and result["images"] == IMAGES, name
        # TFLM's reference kernels and LiteRT's (BUILTIN_REF) do the same integer arithmetic: the same bytes out
        assert result["top1_agreement"] == 100.0 and result["identical_outputs"] == 100.0, name
        assert result["accuracy"] == result["ai_edge_litert_accuracy"] >= 90.0, name
        # XNNPACK (ai-edge-litert's default) rounds differently, by at most d output steps per class: a top-1 it
        # does not share can only be a class pair within 2 d of each other in TFLM (a near tie), listed one by one
        xnnpack = result["xnnpack"]
        assert len(xnnpack["differences"]) == round(IMAGES * (100 - xnnpack["top1_agreement"]) / 100), name
        for difference in xnnpack["differences"]:
            (first, a), (second, b) = difference["tflm_top2"]
            assert a - b <= 2 * xnnpack["max_output_difference"], (name, difference)
            assert difference["xnnpack_top2"][0][0] != first, (name, difference)
        assert xnnpack["top1_agreement"] >= 98.0, name


def test_ops_are_registered_and_listed_for_the_resolver(shipped):
    _, results = shipped
    assert list(results["vgg_int8-io"]["ops"].items()) == [
        ("CONV_2D", 7),
        ("MAX_POOL_2D", 3),
        ("MEAN", 1),
        ("SOFTMAX", 1),
    ]
    assert results["vgg_uint8"]["ops"]["QUANTIZE"] == 2  # uint8 -> int8 at the input, int8 -> uint8 at the output
    for name, result in results.items():
        assert result["resolver"] == RESOLVER[name], name


def test_flash_is_the_file_and_its_strippable_metadata(shipped):
    _, results = shipped
    for name, result in results.items():
        size = (SHIPPED / f"{name}.tflite").stat().st_size
        assert result["flash_bytes"] == size, name
        assert result["associated_files"] == ["labels.txt"] and 0 < result["associated_files_bytes"] < 1000
        assert result["metadata_bytes"]["TFLITE_METADATA"] > 500  # MediaPipe's: labels, normalization, ...
        assert result["strippable_bytes"] == result["associated_files_bytes"] + sum(result["metadata_bytes"].values())
        assert result["strippable_bytes"] < 0.02 * size


def test_smallest_arena_is_the_least_that_runs(shipped, tflm_python):
    _, results = shipped
    for name, result in results.items():
        arena = result["arena_bytes"]
        assert 30_000 < arena < 60_000, name  # the shipped VGG: about 44 KB
        # TFLM's own count of what it allocated from the arena agrees
        assert result["arena_allocations"]["total"] == arena, name
        probe = (
            "import sys, numpy as np; from kerascnn_edge.tflm import arena;"
            "m = open(sys.argv[2], 'rb').read(); i = arena.load(m, 1 << 20).get_input_details(0);"
            "p = np.zeros(i['shape'], i['dtype']); a = int(sys.argv[3]);"
            "print(arena.runs_in(m, a, p), arena.runs_in(m, a - 1, p), arena.runs_in(m, a // 2, p))"
        )
        done = subprocess.run(
            [str(tflm_python), "-c", probe, "-", str(SHIPPED / f"{name}.tflite"), str(arena)],
            capture_output=True,
            text=True,
            timeout=300,
            env=EDGE_ENV,
        )
        assert done.stdout.split() == ["True", "False", "False"], done.stderr[-2000:]
        margin = result["arena_bytes_with_margin"]
        assert margin == math.ceil(1.2 * arena / 1024) * 1024, name


def test_budget_says_which_boards_fit_and_by_how_much_not(shipped):
    _, results = shipped
    for name, result in results.items():
        margin = result["arena_bytes_with_margin"]
        assert [fit["ram_bytes"] for fit in result["boards"]] == [256 * 1024, 512 * 1024]
        assert all(fit["fits"] and "fits;" in fit["sentence"] for fit in result["boards"]), name
        small = result["mcu_ram"]
        assert not small["fits"] and small["short_by_bytes"] == margin - MCU_RAM > 0, name
        assert f"{(margin - MCU_RAM) / 1024:.1f} KB ({margin - MCU_RAM:,} bytes) more" in small["sentence"]
        assert "does not fit" in small["sentence"]


def _c_array(source: str) -> bytes:
    """The bytes of the kModelData initializer in a generated model_data.cc, parsed independently."""
    body = re.search(r"kModelData\[\] = \{(.*?)\};", source, re.S).group(1)
    return bytes(int(token, 16) for token in re.findall(r"0x([0-9a-f]{2})", body))


def _constant(header: str, name: str) -> str:
    return re.search(rf"\b{name} = ([^;]+);", header).group(1)


def test_c_files_compile_alone_and_hold_the_model(shipped):
    compiler = shutil.which("g++")
    if compiler is None:
        pytest.skip("no g++ on this machine (apt-get install g++): the C files cannot be compiled here")
    tmp, results = shipped
    for name, result in results.items():
        folder = tmp / "c" / name
        header, source = (folder / "model_data.h").read_text(), (folder / "model_data.cc").read_text()
        model = (SHIPPED / f"{name}.tflite").read_bytes()
        assert _c_array(source) == model and int(_constant(header, "kModelDataLen")) == len(model)
        assert "alignas(16) const unsigned char kModelData[] = {" in source  # g++ may align a big array anyway
        assert int(_constant(header, "kTensorArenaSize")) == result["arena_bytes_with_margin"]
        assert int(_constant(header, "kArenaBytesMeasured")) == result["arena_bytes"]
        assert float(_constant(header, "kInputScale").rstrip("f")) == pytest.approx(result["input"]["scale"], rel=1e-7)
        assert int(_constant(header, "kInputZeroPoint")) == result["input"]["zero_point"]
        assert int(_constant(header, "kInputPixelOffset")) == {"vgg_int8-io": -128, "vgg_uint8": 0}[name]
        labels = json.loads((SHIPPED / f"{name}.json").read_text())["labels"]
        assert re.findall(r'^    "(.*)",$', source, re.M) == labels
        # against nothing but the header: no TFLM headers, not even the C++ standard library's
        done = subprocess.run(
            [compiler, "-std=c++17", "-nostdinc", "-nostdinc++", "-Wall", "-Werror", "-c", "model_data.cc"],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        # RegisterOps calls exactly the model's Add methods, once each and in order, and the array is 16-byte aligned
        methods = "".join(f'int {m}() {{ calls += "{m} "; return 0; }}' for m in RESOLVER[name])
        space = name.replace("-", "_")
        (folder / "main.cc").write_text(
            '#include <cstdint>\n#include <cstdio>\n#include <string>\n#include "model_data.h"\n'
            f"struct Fake {{ std::string calls; {methods} }};\n"
            f"int main() {{ Fake fake; bool ok = {space}::RegisterOps(fake);\n"
            f'  std::printf("%d %d %d %s\\n", ok, {space}::kOpCount,\n'
            f"  int(reinterpret_cast<std::uintptr_t>({space}::kModelData) % 16), fake.calls.c_str()); }}\n"
        )
        built = subprocess.run(
            [compiler, "-std=c++17", "-O0", "main.cc", "model_data.o", "-o", "main"],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert built.returncode == 0, built.stderr[-2000:]
        ran = subprocess.run([str(folder / "main")], capture_output=True, text=True, timeout=60)
        assert ran.stdout.split() == ["1", str(len(RESOLVER[name])), "0", *RESOLVER[name]]


def test_sizes_parse_the_same_on_both_sides():
    cases = {"262144": 262144, "256K": 262144, "256KB": 262144, "256 KiB": 262144, "0.5M": 524288, "1m": 1048576}
    for text, expected in cases.items():
        assert tflm_report.parse_size(text) == edge_files.parse_size(text) == expected, text
    for bad in ("", "256X", "-1K", "0", "K"):
        with pytest.raises(ValueError, match="size"):
            tflm_report.parse_size(bad)
        with pytest.raises(ValueError, match="size"):
            edge_files.parse_size(bad)


def test_export_cli_refuses_bad_tflm_flags_before_any_work(capsys, tmp_path):
    from kerascnn.export.__main__ import main as export_main

    for flags, message in (
        (["--mcu-ram", "lots"], "--mcu-ram: 'lots' is not a size"),
        (["--tflm-images", "-1"], "0 (skip)"),
    ):
        try:  # argparse's own refusals exit; a setting ExportConfig refuses returns 2 (one line, as train's)
            code = export_main([str(tmp_path / "no-run"), *flags])
        except SystemExit as stopped:
            code = stopped.code
        assert code == 2 and message in capsys.readouterr().err


def test_check_names_bad_input_and_a_missing_tflite_micro(tflm_python, tmp_path):
    done = run_check(tflm_python, "--mcu-ram", "lots", SHIPPED / "vgg_uint8.tflite", timeout=120)
    assert done.returncode == 2 and "--mcu-ram" in done.stderr and "'lots' is not a size" in done.stderr
    done = run_check(tflm_python, tmp_path / "none.tflite", timeout=120)
    assert done.returncode == 2 and "none.tflite does not exist" in done.stderr and "Traceback" not in done.stderr
    np.savez(tmp_path / "small.npz", images=np.zeros((4, 14, 14), np.uint8), labels=np.zeros(4, int))
    done = run_check(tflm_python, "--data", tmp_path / "small.npz", SHIPPED / "vgg_uint8.tflite", timeout=300)
    assert done.returncode == 2 and "the model takes (28, 28, 3)" in done.stderr
    # the TensorFlow side's Python has no tflite-micro: the check says how to get it
    done = subprocess.run(
        [sys.executable, "-m", "kerascnn_edge.tflm.check", str(SHIPPED / "vgg_uint8.tflite")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if "tflite-micro is not installed" not in done.stderr:
        pytest.skip("tflite-micro is importable by the TensorFlow side's Python too: no missing-package case here")
    assert done.returncode == 2 and "pip install 'kerascnn-edge[tflm]'" in done.stderr


def test_a_model_with_an_op_tflm_lacks_is_refused_by_name(tflm_python, tmp_path):
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec([1, 4, 4, 1], tf.float32)])
    def top_k(x):
        return tf.math.top_k(tf.reshape(x, [1, 16]), k=10).values

    converter = tf.lite.TFLiteConverter.from_concrete_functions([top_k.get_concrete_function()], top_k)
    (tmp_path / "topk.tflite").write_bytes(converter.convert())
    manifest = {
        "labels": list("abcdefghij"),
        "input": {"shape": [1, 4, 4, 1], "normalization": {"mean": [0], "std": [1]}},
    }
    (tmp_path / "topk.json").write_text(json.dumps(manifest))
    done = run_check(tflm_python, tmp_path / "topk.tflite", timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)["results"][0]
    assert result["supported"] is False and result["ops"] == {"RESHAPE": 1, "TOPK_V2": 1}
    assert result["error"] == "ops TFLM does not register: TOPK_V2" and "arena_bytes" not in result


def test_export_puts_the_tflm_budget_in_the_report_and_manifest(tflm_python, small_vgg_run, tmp_path):
    from kerascnn.export import export_run

    copy_run(small_vgg_run[0], tmp_path)
    report = export_run(
        tmp_path / "run",
        ["int8", "int8-io"],
        calibration=32,
        out=tmp_path / "out",
        limit=40,
        latency_rounds=1,
        mediapipe=False,
        tflm_images=30,
        mcu_ram=16 * 1024,
    )
    assert "tflm" not in report["variants"]["int8"]  # float input: not a microcontroller variant
    row = report["variants"]["int8-io"]["tflm"]
    assert row["supported"] and row["images"] == 30 and row["top1_agreement"] == 100.0
    assert row["flash_bytes"] == row["flash_bytes"] == report["variants"]["int8-io"]["size_bytes"]
    assert not row["mcu_ram"]["fits"] and row["mcu_ram"]["short_by_bytes"] == row["arena_bytes_with_margin"] - 16384
    manifest = json.loads((tmp_path / "out" / "vgg_int8-io.json").read_text())
    assert manifest["tflm"]["arena_bytes"] == row["arena_bytes"] and manifest["tflm"]["resolver"][0] == "AddConv2D"
    assert manifest["tflm"]["tflite_micro"].startswith("tflite-micro 0.dev")
    assert "tflm" not in json.loads((tmp_path / "out" / "vgg_int8.json").read_text())
    markdown = (tmp_path / "out" / "report.md").read_text()
    assert "## Microcontrollers (TensorFlow Lite Micro)" in markdown and "| int8-io |" in markdown
    assert "int8-io, --mcu-ram 16.0 KB: does not fit" in markdown and "256 KB SRAM" in markdown
    assert json.loads((tmp_path / "out" / "report.json").read_text())["variants"]["int8-io"]["tflm"] == row


def test_check_refuses_a_fifo_as_data_at_once(tflm_python, tmp_path):
    os.mkfifo(tmp_path / "fifo.npz")  # reading it waits for a writer: forever
    done = run_check(tflm_python, "--data", tmp_path / "fifo.npz", SHIPPED / "vgg_uint8.tflite", timeout=60)
    assert done.returncode == 2 and "fifo.npz is not a regular file" in done.stderr, done.stderr[-2000:]


def test_check_refuses_labels_that_are_no_class_of_the_model(tflm_python, tmp_path):
    """Labels of another dataset gave "accuracy": 0.0 and exit 0; check_mediapipe refused the same file."""
    np.savez(tmp_path / "other.npz", images=np.zeros((4, 28, 28, 3), np.uint8), labels=np.array([0, 3, 10, 12]))
    done = run_check(tflm_python, "--data", tmp_path / "other.npz", SHIPPED / "vgg_uint8.tflite", timeout=300)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert "labels must be class indices 0..9" in done.stderr and "found 10, 12" in done.stderr


def test_c_out_refuses_two_models_of_the_same_name(tmp_path, capsys):
    """fw/<name>/model_data.* of the first model was silently replaced by the second's; refused before any work
    (so without tflite-micro too)."""
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        shutil.copy(SHIPPED / "vgg_uint8.tflite", tmp_path / folder)
    models = [str(tmp_path / folder / "vgg_uint8.tflite") for folder in ("a", "b")]
    with pytest.raises(SystemExit) as stopped:
        tflm_check.main(["--c-out", str(tmp_path / "fw"), *models])
    error = capsys.readouterr().err
    assert stopped.value.code == 2 and "2 models are named vgg_uint8.tflite" in error, error
    assert not (tmp_path / "fw").exists()


def test_an_arena_attempt_that_crashes_counts_as_too_small(monkeypatch):
    """A fine-tuned MobileNetV2 uint8 export made TFLM segfault at 65,536 bytes ("Unable to allocate
    quantization->zero_point"), killing the check (exit 139, no output): each attempt runs in a child process."""

    def load(model, size):
        if size < 1400:  # TFLM's crash below the true size (bisection tries 1,024), in the child only
            os.kill(os.getpid(), signal.SIGSEGV)
        if size < 1500:
            raise arenas.ArenaTooSmallError("Failed to resize buffer")
        return "interpreter"

    monkeypatch.setattr(arenas, "load", load)
    monkeypatch.setattr(arenas, "invoke", lambda interpreter, probe: np.zeros(1))
    assert arenas.smallest_arena(b"model", np.zeros(1), largest=4096) == 1500
    assert arenas.attempt(load, b"model", 10) == ("crashed", "SIGSEGV")
    monkeypatch.setattr(arenas, "load", lambda model, size: os.kill(os.getpid(), signal.SIGSEGV))
    with pytest.raises(arenas.TFLMError, match=r"TFLM crashed \(SIGSEGV\) running the model in an arena of 4,096"):
        arenas.smallest_arena(b"model", np.zeros(1), largest=4096)


def test_the_report_gives_why_an_edge_tool_failed_not_its_last_chatter():
    """A crashed check printed no error line and the report said "not measured: INFO: Created TensorFlow Lite
    XNNPACK delegate for CPU.": the signal is the reason; an "error: " line wins over chatter printed after it."""
    from kerascnn.export.report import run_edge_tool

    chatter = (
        "import os, signal, sys; print('INFO: Created TensorFlow Lite XNNPACK delegate for CPU.', file=sys.stderr)"
    )
    crash = chatter + "; sys.stderr.flush(); os.kill(os.getpid(), signal.SIGSEGV)"
    result, error = run_edge_tool([sys.executable, "-c", crash], 60)
    assert result is None and error.startswith("it crashed (SIGSEGV, exit 139)"), error
    refused = "import sys; print('error: --data x.npz is no file', file=sys.stderr); " + chatter + "; sys.exit(2)"
    assert run_edge_tool([sys.executable, "-c", refused], 60) == (None, "--data x.npz is no file")
