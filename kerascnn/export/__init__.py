# TensorFlow side of the export (kerascnn/export/); the edge side, which runs the files, is export/.
"""TensorFlow-side export: conversion under quantization presets, op audit, manifest, quantization report."""

from kerascnn.export.audit import AuditError, audit, op_counts
from kerascnn.export.converter import ConversionError, convert
from kerascnn.export.exporter import export_run
from kerascnn.export.presets import PRESETS, QuantizationPreset
from kerascnn.export.runner import TFLiteClassifier

__all__ = [
    "PRESETS",
    "AuditError",
    "ConversionError",
    "QuantizationPreset",
    "TFLiteClassifier",
    "audit",
    "convert",
    "export_run",
    "op_counts",
]
