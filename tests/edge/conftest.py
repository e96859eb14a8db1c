"""The edge side's tests (export/: predict.py, check_mediapipe.py, the web page, the Pi check) reuse the TensorFlow
side's session export."""

from tests.export.conftest import exported, rgb_folder_export  # noqa: F401  (fixtures)
