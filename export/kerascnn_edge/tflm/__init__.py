# Edge side of the export (export/): TensorFlow-free; the TensorFlow side that writes the files is kerascnn/export/.
"""TensorFlow Lite Micro: `check` (the command), `arena` (the interpreter and the smallest arena, each attempt in a
child process), `ops` (what TFLM registers), `c_files` (model_data.h/.cc for a firmware)."""
