#!/usr/bin/env python3
# Edge side of the export (export/): TensorFlow-free; the TensorFlow side that writes the files is kerascnn/export/.
"""Run kerascnn-predict on arm64 (Raspberry Pi OS = Debian bookworm arm64) under qemu-user emulation, installed
from the kerascnn-edge wheel with pip into a fresh virtual environment, as on a Pi.

Builds, in a git-ignored cache folder (export/pi/.cache), everything a Raspberry Pi would have:
  * an arm64 sysroot with Debian bookworm's Python 3.11 (`apt-get download` + `dpkg -x`, with a private apt
    configuration, so the host's dpkg architectures and apt lists are left alone) and Debian's pip wheel
    (python3-pip-whl, the pip that bookworm's `python3 -m venv` installs),
  * the wheels kerascnn-edge depends on (numpy, Pillow, ai-edge-litert and theirs) for arm64 and for this x86
    machine, downloaded from PyPI into one wheelhouse per machine (plus each other ai-edge-litert version a row asks
    for); MediaPipe rows get a site folder of their own,
  * Debian trixie's static qemu-aarch64 10.x (bookworm's own qemu-user 7.2 comes from the host's `qemu-user`),
  * the first N Fashion-MNIST test images as PNG files (from Debian's IDX files).
Then, on every run: builds the kerascnn-edge wheel from export/ (`pip wheel --no-deps`), creates fresh virtual
environments (`python3.11 -m venv` under qemu on arm64, this Python's on x86) and `pip install`s the wheel into them
from the wheelhouse alone (`--no-index --find-links`: pip still resolves the wheel's requirements), checks there that
kerascnn_edge is the installed copy and TensorFlow is absent, classifies those PNGs with the installed
`kerascnn-predict --json --top-k 1` console script under each emulator/CPU/ai-edge-litert row and on this x86 machine,
and prints one table row per run: status, top-1 accuracy, how many top-1 answers differ from x86 with the same
ai-edge-litert version, and the wall time of the whole predict run.

pip runs from Debian's pip wheel inside each environment (`venv/bin/python pip-*.whl/pip install ...`, what
ensurepip does): `python3 -m venv` with pip would start the new arm64 interpreter as a subprocess, which qemu-user
cannot do without binfmt_misc (a host-wide setting this check leaves alone).

Needs only the Python standard library here (plus pip, apt-get, dpkg-deb and qemu-aarch64).

    python3 export/pi/arm64_check.py                       # the Pi rows, 500 images
    python3 export/pi/arm64_check.py --rows all --json-out /tmp/arm64.json
    python3 export/pi/arm64_check.py --model export/fashion_mnist/vgg_int8-io.tflite --images 100
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import zipfile
import zlib
from dataclasses import dataclass, replace
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
EDGE_SOURCE = REPO / "export"  # kerascnn-edge's distribution: built into a wheel on every run
EDGE_FILES = ("pyproject.toml", "README.md", "kerascnn_edge")  # what the wheel is built from
PREDICT = "kerascnn-predict"  # the wheel's console script, run from each fresh environment's bin/
# Run inside each environment after the install: where kerascnn_edge comes from, and whether TensorFlow could load.
PROBE = (
    "import importlib.util, json, kerascnn_edge; "
    "print(json.dumps({'package': kerascnn_edge.__file__, "
    "'tensorflow': importlib.util.find_spec('tensorflow') is not None}))"
)
MEDIAPIPE_TOP1 = HERE / "mediapipe_top1.py"
FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
ARM64_SOURCES = (
    f"deb [signed-by={KEYRING}] http://deb.debian.org/debian bookworm main\n"
    f"deb [signed-by={KEYRING}] http://deb.debian.org/debian-security bookworm-security main\n"
)
TRIXIE_SOURCES = f"deb [signed-by={KEYRING}] http://deb.debian.org/debian trixie main\n"
# Debian bookworm arm64 packages a TF-free predict.py needs: Python 3.11 and the C/C++ runtime the wheels link to.
ARM64_DEBS = (
    "libc6 libgcc-s1 libstdc++6 zlib1g libexpat1 libffi8 libssl3 libbz2-1.0 liblzma5 libuuid1 libcrypt1 "
    "libncursesw6 libtinfo6 libsqlite3-0 libreadline8 "
    "python3.11-minimal libpython3.11-minimal libpython3.11-stdlib"
).split()
# What MediaPipe's C++ core loads beyond that (Raspberry Pi OS has them): EGL/GLES through libglvnd.
MEDIAPIPE_DEBS = "libegl1 libgles2 libglvnd0".split()
WHEEL_PLATFORMS = {
    "aarch64": ("manylinux_2_27_aarch64", "manylinux_2_28_aarch64", "manylinux_2_17_aarch64", "manylinux2014_aarch64"),
    "x86_64": ("manylinux_2_27_x86_64", "manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"),
}
# A Raspberry Pi 4's /proc/cpuinfo (Cortex-A72, part 0xd08), one block per host CPU (qemu-user shows the host's count).
PI4_CPUINFO_BLOCK = (
    "processor\t: {i}\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm crc32 cpuid\n"
    "CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: 0xd08\n"
    "CPU revision\t: 3\n\n"
)
PI4_CPUINFO_TAIL = "Revision\t: c03111\nSerial\t\t: 0000000000000000\nModel\t\t: Raspberry Pi 4 Model B Rev 1.1\n"


class CheckError(Exception):
    """Something this machine lacks; the message says what and how to get it."""


@dataclass(frozen=True)
class Row:
    """One emulated run: which qemu, which -cpu, which ai-edge-litert, and whether /proc/cpuinfo is a Pi's."""

    name: str
    qemu: str  # "bookworm" (host qemu-user 7.2) or "trixie" (qemu 10.x from the cache)
    cpu: str  # qemu -cpu model; "max" is qemu's default
    litert: str
    pi_cpuinfo: bool = False  # qemu < 8.2 passes the host's x86 /proc/cpuinfo through; this overlays a Pi 4's
    note: str = ""
    client: str = PREDICT  # or "mediapipe": export/pi/mediapipe_top1.py (MediaPipe Tasks ImageClassifier)


ROWS = [
    Row("pi4", "trixie", "cortex-a72", "2.3.0", note="Raspberry Pi 4 CPU"),
    Row("pi5", "trixie", "cortex-a76", "2.3.0", note="Raspberry Pi 5 CPU"),
    Row("bookworm-1.4", "bookworm", "max", "1.4.0", note="the issue's working case"),
    Row("bookworm-2.3", "bookworm", "max", "2.3.0", note="the issue's crash"),
    Row("bookworm-2.3-a72", "bookworm", "cortex-a72", "2.3.0", note="crash with any -cpu"),
    Row("bookworm-2.3-picpuinfo", "bookworm", "cortex-a72", "2.3.0", True, "x86 /proc/cpuinfo replaced by a Pi 4's"),
    Row("bookworm-2.3-picpuinfo-max", "bookworm", "max", "2.3.0", True, "qemu 7.2 -cpu max: has SME"),
    Row("bookworm-2.3-picpuinfo-nosme", "bookworm", "max,sme=off", "2.3.0", True, "qemu 7.2 -cpu max without SME"),
    Row("trixie-max", "trixie", "max", "2.3.0", note="qemu 10 -cpu max: has SME"),
    Row("trixie-1.4-a72", "trixie", "cortex-a72", "1.4.0"),
    Row("pi4-mediapipe", "trixie", "cortex-a72", "2.3.0", note="Raspberry Pi 4 CPU", client="mediapipe"),
    Row("pi5-mediapipe", "trixie", "cortex-a76", "2.3.0", note="Raspberry Pi 5 CPU", client="mediapipe"),
]
PI_ROWS = ("pi4", "pi5")
MEDIAPIPE_ROWS = ("pi4-mediapipe", "pi5-mediapipe")
SIGNALS = {4: "SIGILL", 6: "SIGABRT", 11: "SIGSEGV"}


def run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    """Runs a build step; a failure raises CheckError with the command and the end of its output."""
    result = subprocess.run(command, capture_output=True, text=True, **kwargs)
    if result.returncode != 0:
        raise CheckError(
            f"`{' '.join(command[:6])} ...` failed (exit {result.returncode}): "
            f"{(result.stderr or result.stdout).strip()[-400:]}"
        )
    return result


def built(target: Path, build) -> Path:
    """Builds `target` once: `build(tmp)` fills a temporary sibling that is renamed into place when complete."""
    if target.exists():
        return target
    tmp = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
    try:
        build(tmp)
        try:
            tmp.rename(target)
        except OSError:
            if not target.exists():  # else a concurrent run built it first: keep theirs
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def apt(cache: Path, name: str, arch: str, sources: str) -> list[str]:
    """apt-get options for a private apt (own sources, lists and empty dpkg status) of one architecture."""
    root = cache / "apt" / name
    for sub in ("lists/partial", "archives/partial", "etc", "parts"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    (root / "status").touch()
    (root / "etc" / "sources.list").write_text(sources)
    options = {
        "APT::Architecture": arch,
        "APT::Architectures::": arch,
        "Dir::State": root,
        "Dir::State::Lists": root / "lists",
        "Dir::State::status": root / "status",
        "Dir::Cache": root,
        "Dir::Cache::Archives": root / "archives",
        "Dir::Etc::SourceList": root / "etc" / "sources.list",
        "Dir::Etc::SourceParts": root / "parts",
        "Dir::Etc::Preferences": root / "etc" / "preferences",
        "Dir::Etc::PreferencesParts": root / "parts",
        "Debug::NoLocking": "1",
    }
    if os.geteuid() == 0:
        options["APT::Sandbox::User"] = "root"
    return [f"-o{key}={value}" for key, value in options.items()]


def download_debs(cache: Path, name: str, arch: str, sources: str, packages: list[str], into: Path) -> None:
    options = apt(cache, name, arch, sources)
    run(["apt-get", *options, "-q", "update"])
    run(["apt-get", *options, "-q", "download", *packages], cwd=into)


def build_sysroot(cache: Path) -> Path:
    """Debian bookworm arm64 root with /usr/bin/python3.11, for `qemu-aarch64 -L`."""

    def build(tmp: Path) -> None:
        debs = tmp / "debs"
        debs.mkdir()
        download_debs(cache, "bookworm-arm64", "arm64", ARM64_SOURCES, ARM64_DEBS, debs)
        for deb in sorted(debs.glob("*.deb")):
            run(["dpkg-deb", "-x", str(deb), str(tmp / "root")])
        shutil.rmtree(debs)

    return built(cache / "sysroot", build) / "root"


def build_pi_cpuinfo_sysroot(cache: Path, sysroot: Path) -> Path:
    """The sysroot plus a Pi 4 /proc/cpuinfo: qemu-user's -L prefix also redirects /proc/cpuinfo when the file exists
    under it. Hard links, so it costs no space."""

    def build(tmp: Path) -> None:
        root = tmp / "root"
        shutil.copytree(sysroot, root, symlinks=True, copy_function=os.link)
        (root / "proc").mkdir()
        count = os.cpu_count() or 1
        (root / "proc" / "cpuinfo").write_text(
            "".join(PI4_CPUINFO_BLOCK.format(i=i) for i in range(count)) + PI4_CPUINFO_TAIL
        )

    return built(cache / "sysroot-pi4-cpuinfo", build) / "root"


def build_mediapipe_sysroot(cache: Path, sysroot: Path) -> Path:
    """The sysroot plus the EGL/GLES libraries MediaPipe's C++ core links to (hard links for the rest)."""

    def build(tmp: Path) -> None:
        root, debs = tmp / "root", tmp / "debs"
        shutil.copytree(sysroot, root, symlinks=True, copy_function=os.link)
        debs.mkdir()
        download_debs(cache, "bookworm-arm64", "arm64", ARM64_SOURCES, MEDIAPIPE_DEBS, debs)
        for deb in sorted(debs.glob("*.deb")):
            run(["dpkg-deb", "-x", str(deb), str(root)])
        shutil.rmtree(debs)

    return built(cache / "sysroot-mediapipe", build) / "root"


def build_trixie_qemu(cache: Path) -> Path:
    """Debian trixie's qemu-aarch64 (statically linked, so it runs here as extracted)."""

    def build(tmp: Path) -> None:
        download_debs(cache, "trixie-amd64", "amd64", TRIXIE_SOURCES, ["qemu-user/trixie"], tmp)
        deb = next(tmp.glob("qemu-user_*.deb"))
        run(["dpkg-deb", "-x", str(deb), str(tmp / "root")])
        keep = tmp / "root" / "usr" / "bin" / "qemu-aarch64"
        keep.rename(tmp / "qemu-aarch64")
        shutil.rmtree(tmp / "root")
        deb.unlink()

    return built(cache / "qemu-trixie", build) / "qemu-aarch64"


def build_site(cache: Path, litert: str, machine: str, mediapipe: bool = False) -> Path:
    """numpy, Pillow and ai-edge-litert==`litert` wheels (and mediapipe with its dependencies, OpenCV as its headless
    build, as on a Pi without a desktop) for CPython 3.11 (aarch64) or this interpreter (x86_64), installed into one
    folder for PYTHONPATH. The MediaPipe rows run from it (mediapipe_top1.py needs no kerascnn_edge); the
    kerascnn-predict rows run from the wheel's fresh environments instead (install_fresh)."""
    version = "3.11" if machine == "aarch64" else f"{sys.version_info.major}.{sys.version_info.minor}"
    platforms = [arg for platform in WHEEL_PLATFORMS[machine] for arg in ("--platform", platform)]
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    binary = ["--only-binary=:all:", "--python-version", version, *platforms]

    def build(tmp: Path) -> None:
        wheels = tmp / "wheels"
        extra = ["mediapipe"] if mediapipe else []
        run([*pip, "download", *binary, "-d", str(wheels), f"ai-edge-litert=={litert}", "numpy", "pillow", *extra])
        if mediapipe:  # opencv-contrib-python needs X11/GL libraries; the headless build is the same cv2
            for wheel in wheels.glob("opencv_contrib_python-*.whl"):
                wheel.unlink()
            run([*pip, "download", "--no-deps", *binary, "-d", str(wheels), "opencv-contrib-python-headless"])
        run(
            [
                *pip,
                "install",
                "--no-deps",
                "--no-compile",
                *binary,
                "--target",
                str(tmp / "site"),
                *map(str, sorted(wheels.glob("*.whl"))),
            ]
        )
        (tmp / "site" / "wheels.txt").write_text("\n".join(w.name for w in sorted(wheels.glob("*.whl"))) + "\n")
        shutil.rmtree(wheels)

    name = f"site-{machine}-litert-{litert}" + ("-mediapipe" if mediapipe else "")
    return built(cache / name, build) / "site"


def build_pip_wheel(cache: Path) -> Path:
    """Debian bookworm's pip wheel (python3-pip-whl, pure Python): the pip every fresh environment installs with."""

    def build(tmp: Path) -> None:
        download_debs(cache, "bookworm-arm64", "arm64", ARM64_SOURCES, ["python3-pip-whl"], tmp)
        deb = next(tmp.glob("python3-pip-whl_*.deb"))
        run(["dpkg-deb", "-x", str(deb), str(tmp / "root")])
        next((tmp / "root" / "usr" / "share" / "python-wheels").glob("pip-*.whl")).rename(tmp / "pip.whl")
        shutil.rmtree(tmp / "root")
        deb.unlink()

    return built(cache / "pip-wheel", build) / "pip.whl"


def build_wheel(into: Path) -> Path:
    """Builds the kerascnn-edge wheel from a copy of export/'s package files into `into` and returns its path.

    `pip wheel --no-deps`; the build uses this interpreter's setuptools when it is new enough (>= 69, what
    export/pyproject.toml requires) and pip's isolated build, which downloads setuptools, otherwise. The copy keeps
    setuptools' build/ and egg-info folders out of the source tree.

    Raises:
        CheckError: pip could not build it (the message ends with pip's output).
    """
    source = into / "source"
    source.mkdir(parents=True)
    for name in EDGE_FILES:
        if (EDGE_SOURCE / name).is_dir():
            shutil.copytree(EDGE_SOURCE / name, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(EDGE_SOURCE / name, source / name)
    try:
        from importlib.metadata import version

        isolation = [] if int(version("setuptools").split(".")[0]) < 69 else ["--no-build-isolation"]
    except (ImportError, ValueError):  # no setuptools here: pip's isolated build brings one
        isolation = []
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    run([*pip, "wheel", "--no-deps", *isolation, str(source), "-w", str(into)])
    shutil.rmtree(source)
    return next(into.glob("kerascnn_edge-*.whl"))


def wheel_requirements(wheel: Path) -> list[str]:
    """The Requires-Dist lines of a wheel's METADATA."""
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        text = archive.read(name).decode()
    return [line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("Requires-Dist:")]


def build_wheelhouse(cache: Path, wheel: Path, machine: str, litert_versions: list[str]) -> Path:
    """The wheels `wheel` depends on, and ai-edge-litert==v for each of `litert_versions`, for CPython 3.11 (aarch64)
    or this interpreter (x86_64), downloaded from PyPI by pip once per set of requirements."""
    version = "3.11" if machine == "aarch64" else f"{sys.version_info.major}.{sys.version_info.minor}"
    platforms = [arg for platform in WHEEL_PLATFORMS[machine] for arg in ("--platform", platform)]
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", "download"]
    binary = ["--only-binary=:all:", "--python-version", version, *platforms]
    key = json.dumps([wheel_requirements(wheel), sorted(litert_versions)])

    def build(tmp: Path) -> None:
        run([*pip, *binary, "-d", str(tmp), str(wheel)])
        for litert in litert_versions:
            run([*pip, *binary, "-d", str(tmp), f"ai-edge-litert=={litert}"])
        (tmp / wheel.name).unlink()  # the wheel under test is this run's build, never a cached one

    return built(cache / f"wheels-{machine}-{hashlib.sha256(key.encode()).hexdigest()[:12]}", build)


def venv_env(**extra: str) -> dict:
    """The environment for commands in a fresh virtual environment: this one less PYTHON* and PIP_* variables (a
    PYTHONPATH to the source tree would hide the installed package) and pip's configuration files."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "PIP_"))}
    return {**env, "PIP_CONFIG_FILE": os.devnull, "PIP_DISABLE_PIP_VERSION_CHECK": "1", **extra}


def install_fresh(
    emulator: list[str], python: Path, venv: Path, pip_wheel: Path, wheel: Path, house: Path, litert: str
) -> dict:
    """Creates the virtual environment `venv` with `python` (run under `emulator`, [] on this machine), pip installs
    `wheel` into it from the wheelhouse `house` alone, then ai-edge-litert==`litert` if that is not the version the
    wheel pins, and returns the probe's answer (where kerascnn_edge is, whether tensorflow is importable) with the
    environment's path and the seconds it all took.

    Raises:
        CheckError: venv or pip failed (the message ends with their output).
    """
    start = time.perf_counter()
    if venv.exists():
        shutil.rmtree(venv)
    run([*emulator, str(python), "-m", "venv", "--without-pip", str(venv)], env=venv_env())
    venv_python = [*emulator, str(venv / "bin" / "python")]
    pip = [*venv_python, str(pip_wheel / "pip"), "install", "--no-index", "--find-links", str(house), "--no-compile"]
    run([*pip, "-q", str(wheel)], env=venv_env())
    if f"ai-edge-litert=={litert}" not in wheel_requirements(wheel):
        run([*pip, "-q", f"ai-edge-litert=={litert}"], env=venv_env())  # pip warns of the conflict with the pin
    probe = run([*venv_python, "-c", PROBE], env=venv_env(), cwd=venv)  # cwd: nothing importable there
    return {**json.loads(probe.stdout), "venv": str(venv), "seconds": round(time.perf_counter() - start, 1)}


def png(pixels: bytes, width: int, height: int) -> bytes:
    """An 8-bit greyscale PNG: signature, IHDR, one zlib IDAT of filter-0 rows, IEND (each chunk CRC-32'd)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\0" + pixels[y * width : (y + 1) * width] for y in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(rows, 9))
        + chunk(b"IEND", b"")
    )


def build_images(cache: Path, count: int) -> tuple[list[Path], list[int]]:
    """The first `count` Fashion-MNIST test images as PNGs, and their labels (IDX: big-endian header, then bytes)."""
    images_file, labels_file = FASHION_MNIST / "t10k-images-idx3-ubyte.gz", FASHION_MNIST / "t10k-labels-idx1-ubyte.gz"
    if not images_file.exists():
        raise CheckError(f"{images_file} is missing: apt-get install dataset-fashion-mnist")
    images, labels = gzip.decompress(images_file.read_bytes()), gzip.decompress(labels_file.read_bytes())
    _, total, height, width = struct.unpack(">IIII", images[:16])
    if not 1 <= count <= total:
        raise CheckError(f"--images must be 1..{total}, got {count}")
    size = height * width

    def build(tmp: Path) -> None:
        for i in range(count):
            (tmp / f"{i:05d}.png").write_bytes(png(images[16 + i * size : 16 + (i + 1) * size], width, height))

    folder = built(cache / f"fashion-mnist-test-{count}", build)
    return sorted(folder.glob("*.png")), list(labels[8 : 8 + count])


def classify(command: list[str], model: str, env: dict, images: list[Path], labels: list[str], timeout: int) -> dict:
    """Runs kerascnn-predict (or mediapipe_top1.py, same output) as `command` with the environment `env`; returns
    status, top-1 class index per image (or None) and the wall time."""
    start = time.perf_counter()
    options = ["--json", "--top-k", "1"] if command[-1].endswith(PREDICT) else []
    try:
        result = subprocess.run(
            [*command, "--model", model, *options, *map(str, images)],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
        )
    except subprocess.TimeoutExpired:
        return {"status": f"timeout after {timeout} s", "top1": None, "seconds": timeout}
    seconds = round(time.perf_counter() - start, 1)
    if result.returncode < 0 or result.returncode - 128 in SIGNALS:  # qemu re-raises the guest's signal
        code = -result.returncode if result.returncode < 0 else result.returncode - 128
        fatal = [line.split(" (")[0] for line in result.stderr.splitlines() if line.startswith("FATAL")]
        status = f"crash: {SIGNALS.get(code, f'signal {code}')}" + (f" ({fatal[0]})" if fatal else "")
        return {"status": status, "top1": None, "seconds": seconds}
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no message"])[-1].removeprefix("error: ")
        return {"status": f"error: {last}", "top1": None, "seconds": seconds}
    names = [json.loads(line)["top"][0][0] for line in result.stdout.splitlines()]
    top1 = [labels.index(name) if name in labels else int(name) for name in names]  # an index: labels not in metadata
    return {"status": "ok", "top1": top1, "seconds": seconds}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--model",
        type=Path,
        default=REPO / "export" / "fashion_mnist" / "vgg_int8.tflite",
        help="the .tflite to run, with its manifest JSON beside it (default: %(default)s)",
    )
    parser.add_argument("--images", type=int, default=500, help="Fashion-MNIST test images (default: %(default)s)")
    parser.add_argument(
        "--rows",
        default="pi",
        help="comma-separated row names, 'pi' (the Pi 4 and Pi 5 rows), "
        "'mediapipe' (their MediaPipe twins) or 'all' (default: %(default)s); rows: "
        + ", ".join(row.name for row in ROWS),
    )
    parser.add_argument(
        "--cache", type=Path, default=HERE / ".cache", help="download/build folder (default: %(default)s)"
    )
    parser.add_argument("--timeout", type=int, default=600, help="seconds per predict.py run (default: %(default)s)")
    parser.add_argument("--json-out", type=Path, help="also write the results as JSON here")
    parser.add_argument(
        "--venvs",
        type=Path,
        help="create the fresh virtual environments here and keep them (replacing earlier ones of the same name); "
        "default: a temporary folder in the cache, deleted at the end",
    )
    args = parser.parse_args(argv)
    names = {"pi": PI_ROWS, "mediapipe": MEDIAPIPE_ROWS, "all": [row.name for row in ROWS]}.get(
        args.rows, args.rows.split(",")
    )
    unknown = sorted(set(names) - {row.name for row in ROWS})
    if unknown:
        parser.error(f"unknown rows {unknown}; valid: {', '.join(row.name for row in ROWS)}, pi, mediapipe, all")
    rows = [row for row in ROWS if row.name in names]
    args.model = args.model.resolve()
    manifest_path = args.model.with_suffix(".json")
    if not args.model.is_file() or not manifest_path.is_file():
        parser.error(f"need {args.model} and its manifest {manifest_path}")
    try:
        manifest = json.loads(manifest_path.read_text())
        manifest["labels"], manifest["input"]["shape"]
    except (ValueError, KeyError, TypeError) as error:
        parser.error(f"{manifest_path} is not a kerascnn manifest ({error!r}); export the model with kerascnn.export")
    venvs = args.venvs.resolve() if args.venvs else None
    args.cache.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="run.", dir=args.cache))  # this run's wheel (and venvs without --venvs)
    try:
        return check(args, rows, manifest, venvs or scratch / "venvs", scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def check(args, rows: list[Row], manifest: dict, venvs: Path, scratch: Path) -> int:
    """Builds what `rows` need, runs them and the x86 references, prints the table; main's exit status."""
    try:
        for tool, package in (("qemu-aarch64", "qemu-user"), ("apt-get", "apt"), ("dpkg-deb", "dpkg")):
            if not shutil.which(tool):
                raise CheckError(f"{tool} is missing: apt-get install {package}")
        timings = {}
        start = time.perf_counter()
        images, truth = build_images(args.cache, args.images)
        sysroot = build_sysroot(args.cache)
        pip_wheel = build_pip_wheel(args.cache)
        timings["sysroot"] = time.perf_counter() - start
        qemu = {"bookworm": shutil.which("qemu-aarch64")}
        if any(row.qemu == "trixie" for row in rows):
            qemu["trixie"] = str(build_trixie_qemu(args.cache))
        pi_sysroot = build_pi_cpuinfo_sysroot(args.cache, sysroot) if any(r.pi_cpuinfo for r in rows) else None
        mediapipe_sysroot = (
            build_mediapipe_sysroot(args.cache, sysroot) if any(r.client == "mediapipe" for r in rows) else None
        )
        wheel = build_wheel(scratch / "wheel")
        litert_versions = sorted({row.litert for row in rows})  # each gets an x86 reference
        arm64_versions = {row.litert for row in rows if row.client != "mediapipe"}
        houses = {m: build_wheelhouse(args.cache, wheel, m, litert_versions) for m in ("aarch64", "x86_64")}
        mediapipe_versions = {r.litert for r in rows if r.client == "mediapipe"}
        sites = {v: build_site(args.cache, v, "aarch64", mediapipe=True) for v in mediapipe_versions}
        timings["build"] = time.perf_counter() - start
        # One fresh environment per machine and ai-edge-litert version, shared by the rows that use it. The arm64 one
        # is made under qemu 10 when the rows fetched it (faster), else 7.2; its interpreter is the sysroot's, which
        # the Pi 4 /proc/cpuinfo sysroot holds as hard links, so every -L root runs it.
        pythons = {
            "x86_64": ([], Path(sys.executable)),
            "aarch64": ([qemu.get("trixie", qemu["bookworm"]), "-L", str(sysroot)], sysroot / "usr/bin/python3.11"),
        }
        edges = {}
        for version in litert_versions:
            for machine, (emulator, python) in pythons.items():
                if machine == "aarch64" and version not in arm64_versions:
                    continue  # only MediaPipe rows, which run from their site folder
                venv = venvs / f"{machine}-litert-{version}"
                edges[machine, version] = install_fresh(
                    emulator, python, venv, pip_wheel, wheel, houses[machine], version
                )
        timings["install"] = time.perf_counter() - start - timings["build"]
    except CheckError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    qemu_versions = {
        name: subprocess.run([path, "--version"], capture_output=True, text=True).stdout.split("\n")[0]
        for name, path in qemu.items()
    }
    model, labels = str(args.model), manifest["labels"]
    results = []
    for version in litert_versions:
        edge = edges["x86_64", version]
        command = [str(Path(edge["venv"]) / "bin" / PREDICT)]
        outcome = classify(command, model, venv_env(PYTHONDONTWRITEBYTECODE="1"), images, labels, args.timeout)
        results.append(
            {
                "row": f"x86-{version}",
                "client": PREDICT,
                "machine": "x86_64 (this host)",
                "qemu": "-",
                "cpu": "-",
                "litert": version,
                "cpuinfo": "host",
                "note": "reference",
                "edge": edge,
                **outcome,
            }
        )
    reference = {r["litert"]: r["top1"] for r in results}
    for row in rows:
        mediapipe = row.client == "mediapipe"
        root = pi_sysroot if row.pi_cpuinfo else mediapipe_sysroot if mediapipe else sysroot
        emulated = [qemu[row.qemu], "-L", str(root), "-cpu", row.cpu]
        if mediapipe:
            command = [*emulated, str(root / "usr" / "bin" / "python3.11"), str(MEDIAPIPE_TOP1)]
            env = {**os.environ, "PYTHONPATH": str(sites[row.litert]), "PYTHONDONTWRITEBYTECODE": "1"}
            edge = None
        else:  # qemu-user runs ELF files only: the console script is handed to the environment's python
            edge = edges["aarch64", row.litert]
            venv = Path(edge["venv"])
            command = [*emulated, str(venv / "bin" / "python"), str(venv / "bin" / PREDICT)]
            env = venv_env(PYTHONDONTWRITEBYTECODE="1")
        outcome = classify(command, model, env, images, labels, args.timeout)
        if mediapipe:
            wheels = (sites[row.litert] / "wheels.txt").read_text().split()
            row = replace(row, note=" ".join([row.note, *(w.split("-py")[0] for w in wheels if "mediapipe" in w)]))
        results.append(
            {
                "row": row.name,
                "client": row.client,
                "machine": "aarch64 (emulated)",
                "qemu": qemu_versions[row.qemu],
                "cpu": row.cpu,
                "litert": row.litert,
                "cpuinfo": "Pi 4" if row.pi_cpuinfo else "qemu's",
                "note": row.note,
                "edge": edge,
                **outcome,
            }
        )
    for result in results:
        top1, ref = result.pop("top1"), reference.get(result["litert"])
        result["accuracy"] = round(100 * sum(p == t for p, t in zip(top1, truth)) / len(truth), 2) if top1 else None
        result["differ_from_x86"] = sum(p != r for p, r in zip(top1, ref)) if top1 and ref else None
    header = [
        "row",
        "client",
        "qemu",
        "-cpu",
        "/proc/cpuinfo",
        "ai-edge-litert",
        "status",
        f"top-1 % ({args.images})",
        "top-1 differs from x86 kerascnn-predict",
        "wall s",
        "note",
    ]
    print(
        f"model {args.model.name} ({manifest['input'].get('color', '?')} input "
        f"{manifest['input']['shape']}), {args.images} Fashion-MNIST test images, kerascnn-predict --top-k 1\n"
    )
    print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    for r in results:
        cells = [
            r["row"],
            r["client"],
            r["qemu"].replace("qemu-aarch64 version ", ""),
            r["cpu"],
            r["cpuinfo"],
            r["litert"],
            r["status"],
            r["accuracy"] if r["accuracy"] is not None else "-",
            r["differ_from_x86"] if r["differ_from_x86"] is not None else "-",
            r["seconds"],
            r["note"],
        ]
        print("| " + " | ".join(map(str, cells)) + " |")
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    print(f"\n{wheel.name} (sha256 {digest[:16]}...), pip-installed into fresh virtual environments:")
    for (machine, version), edge in edges.items():
        where = "installed copy" if installed(edge) else f"NOT the installed copy: {edge['package']}"
        tensorflow = "importable" if edge["tensorflow"] else "absent"
        print(f"  {machine}, ai-edge-litert {version}: {edge['seconds']} s; kerascnn_edge {where}; TF {tensorflow}")
    print(
        f"\nbuild/cache {timings['build']:.0f} s; environments {timings['install']:.0f} s; "
        f"total {time.perf_counter() - start:.0f} s"
    )
    if args.json_out:
        tmp = args.json_out.with_name(args.json_out.name + ".tmp")
        found = {"model": str(args.model), "images": args.images, "wheel": {"name": wheel.name, "sha256": digest}}
        tmp.write_text(json.dumps({**found, "rows": results}, indent=1) + "\n")
        tmp.rename(args.json_out)
    pi_ok = all(
        r["status"] == "ok" and r["differ_from_x86"] is not None and installed(r["edge"])
        for r in results
        if r["row"] in PI_ROWS or r["row"].startswith("x86-")
    )
    return 0 if pi_ok else 1


def installed(edge: dict) -> bool:
    """Whether an environment's probe found kerascnn_edge inside the environment and no TensorFlow."""
    return Path(edge["package"]).is_relative_to(edge["venv"]) and not edge["tensorflow"]


if __name__ == "__main__":
    sys.exit(main())
