# Edge side of the export (export/): TensorFlow-free; the TensorFlow side that writes the files is kerascnn/export/.
"""kerascnn-edge: run kerascnn's .tflite exports with NumPy, Pillow and ai-edge-litert, never TensorFlow.

Which module owns which concern:

- `files`: the user's input files: the one "is it a regular file" check (a FIFO would block a read forever), the
  test-data .npz (`load_data`, `check_labels`) and byte sizes (`parse_size`).
- `manifest`: the JSON beside each .tflite, `Manifest`, and its one validation (the TensorFlow side validates what
  it writes with it; export/web/manifest.js is its JavaScript twin, tested equal).
- `metadata`: what the .tflite carries itself (TFLITE_METADATA, labels.txt), read without TensorFlow or MediaPipe.
- `predict`: classify images (`kerascnn-predict`, `python -m kerascnn_edge.predict`).
- `check_mediapipe`: MediaPipe Tasks against predict's route (`kerascnn-check-mediapipe`; extra `[mediapipe]`).
- `tflm`: TensorFlow Lite Micro: arena, flash, ops, C files (`kerascnn-check-tflm`; extra `[tflm]`).
"""
