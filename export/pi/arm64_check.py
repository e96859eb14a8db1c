#!/usr/bin/env python3
# Edge side of the export (export/): TensorFlow-free; the TensorFlow side that writes the files is kerascnn/export/.
"""Run kerascnn-predict on arm64 (Raspberry Pi OS = Debian bookworm arm64) under qemu-user emulation.

Builds, in a git-ignored cache folder (export/pi/.cache), everything a Raspberry Pi would have:
  * an arm64 sysroot with Debian bookworm's Python 3.11 (`apt-get download` + `dpkg -x`, with a private apt
    configuration, so the host's dpkg architectures and apt lists are left alone),
  * arm64 wheels of numpy, Pillow and ai-edge-litert from PyPI, one site folder per ai-edge-litert version,
  * Debian trixie's static qemu-aarch64 10.x (bookworm's own qemu-user 7.2 comes from the host's `qemu-user`),
  * the first N Fashion-MNIST test images as PNG files (from Debian's IDX files),
then classifies those PNGs with `kerascnn-predict --json --top-k 1` under each emulator/CPU/ai-edge-litert row and
on this x86 machine, and prints one table row per run: status, top-1 accuracy, how many top-1 answers differ from
x86 with the same ai-edge-litert version, and the wall time of the whole predict.py run.

Needs only the Python standard library here (plus pip, apt-get, dpkg-deb and qemu-aarch64).

    python3 export/pi/arm64_check.py                       # the Pi rows, 500 images
    python3 export/pi/arm64_check.py --rows all --json-out /tmp/arm64.json
    python3 export/pi/arm64_check.py --model export/fashion_mnist/vgg_int8-io.tflite --images 100
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from dataclasses import dataclass, replace
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
PREDICT = "kerascnn_edge.predict"  # run as `python -m`, the package found beside the wheels' site (EDGE_SOURCE)
EDGE_SOURCE = REPO / "export"  # kerascnn-edge's source: pure Python, the same on arm64
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
    client: str = "predict.py"  # or "mediapipe": export/pi/mediapipe_top1.py (MediaPipe Tasks ImageClassifier)


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
    folder for PYTHONPATH."""
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


def classify(command: list[str], env: dict, images: list[Path], labels: list[str], timeout: int) -> dict:
    """Runs predict.py (or mediapipe_top1.py, same output) as `command`; returns status, top-1 class index per image
    (or None) and the wall time."""
    start = time.perf_counter()
    options = ["--json", "--top-k", "1"] if command[-1] == PREDICT else []
    try:
        result = subprocess.run(
            [*command, "--model", env["MODEL"], *options, *map(str, images)],
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, **env},
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
    try:
        for tool, package in (("qemu-aarch64", "qemu-user"), ("apt-get", "apt"), ("dpkg-deb", "dpkg")):
            if not shutil.which(tool):
                raise CheckError(f"{tool} is missing: apt-get install {package}")
        args.cache.mkdir(parents=True, exist_ok=True)
        timings = {}
        start = time.perf_counter()
        images, truth = build_images(args.cache, args.images)
        sysroot = build_sysroot(args.cache)
        timings["sysroot"] = time.perf_counter() - start
        qemu = {"bookworm": shutil.which("qemu-aarch64")}
        if any(row.qemu == "trixie" for row in rows):
            qemu["trixie"] = str(build_trixie_qemu(args.cache))
        pi_sysroot = build_pi_cpuinfo_sysroot(args.cache, sysroot) if any(r.pi_cpuinfo for r in rows) else None
        mediapipe_sysroot = (
            build_mediapipe_sysroot(args.cache, sysroot) if any(r.client == "mediapipe" for r in rows) else None
        )
        litert_versions = sorted({row.litert for row in rows})
        sites = {(v, m): build_site(args.cache, v, m) for v in litert_versions for m in ("aarch64", "x86_64")}
        sites.update(
            {
                (r.litert, "mediapipe"): build_site(args.cache, r.litert, "aarch64", mediapipe=True)
                for r in rows
                if r.client == "mediapipe"
            }
        )
        timings["build"] = time.perf_counter() - start
    except CheckError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    qemu_versions = {
        name: subprocess.run([path, "--version"], capture_output=True, text=True).stdout.split("\n")[0]
        for name, path in qemu.items()
    }
    model_env = {"MODEL": str(args.model), "PYTHONDONTWRITEBYTECODE": "1"}
    results = []
    for version in litert_versions:
        env = {**model_env, "PYTHONPATH": f"{sites[version, 'x86_64']}:{EDGE_SOURCE}"}
        outcome = classify([sys.executable, "-m", PREDICT], env, images, manifest["labels"], args.timeout)
        results.append(
            {
                "row": f"x86-{version}",
                "client": "predict.py",
                "machine": "x86_64 (this host)",
                "qemu": "-",
                "cpu": "-",
                "litert": version,
                "cpuinfo": "host",
                "note": "reference",
                **outcome,
            }
        )
    reference = {r["litert"]: r["top1"] for r in results}
    for row in rows:
        mediapipe = row.client == "mediapipe"
        root = pi_sysroot if row.pi_cpuinfo else mediapipe_sysroot if mediapipe else sysroot
        command = [
            qemu[row.qemu],
            "-L",
            str(root),
            "-cpu",
            row.cpu,
            str(root / "usr" / "bin" / "python3.11"),
            *([str(MEDIAPIPE_TOP1)] if mediapipe else ["-m", PREDICT]),
        ]
        env = {**model_env, "PYTHONPATH": f"{sites[row.litert, 'mediapipe' if mediapipe else 'aarch64']}:{EDGE_SOURCE}"}
        outcome = classify(command, env, images, manifest["labels"], args.timeout)
        if mediapipe:
            wheels = (sites[row.litert, "mediapipe"] / "wheels.txt").read_text().split()
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
        "top-1 differs from x86 predict.py",
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
    print(f"\nbuild/cache {timings['build']:.0f} s; total {time.perf_counter() - start:.0f} s")
    if args.json_out:
        tmp = args.json_out.with_name(args.json_out.name + ".tmp")
        tmp.write_text(json.dumps({"model": str(args.model), "images": args.images, "rows": results}, indent=1) + "\n")
        tmp.rename(args.json_out)
    pi_ok = all(r["status"] == "ok" and r["differ_from_x86"] is not None for r in results if r["row"] in PI_ROWS)
    return 0 if pi_ok else 1


if __name__ == "__main__":
    sys.exit(main())
