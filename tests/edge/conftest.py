"""The edge side's tests (export/: predict.py, check_mediapipe.py, the web page, the Pi check, the wheel) reuse the
TensorFlow side's session export."""

import importlib.util
import sys
from pathlib import Path

from tests.export.conftest import exported, rgb_folder_export  # noqa: F401  (fixtures)

ARM64_CHECK = Path(__file__).resolve().parents[2] / "export" / "pi" / "arm64_check.py"


def load_arm64_check():
    """export/pi/arm64_check.py as a module (a script, not a package): its wheel and image builders."""
    spec = importlib.util.spec_from_file_location("arm64_check", ARM64_CHECK)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module
