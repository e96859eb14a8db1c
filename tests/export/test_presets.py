"""Quantization presets as data, and the audit that each preset's rules hold (fast: untrained models)."""

import dataclasses
import importlib

import keras
import numpy as np
import pytest

from kerascnn import models
from kerascnn.export import PRESETS, AuditError, QuantizationPreset, audit, convert
from kerascnn.export.runner import TFLiteClassifier
from tests.helpers import random_images

audit_module = importlib.import_module("kerascnn.export.audit")  # the module; kerascnn.export.audit is the function

if keras.backend.backend() != "tensorflow":
    pytest.skip("export runs on the TensorFlow backend", allow_module_level=True)


def test_presets_are_frozen_data_with_one_entry_per_name():
    assert list(PRESETS) == ["float32", "float16", "dynamic", "int8", "int8-io", "uint8"]
    assert all(isinstance(p, QuantizationPreset) and p.name == name for name, p in PRESETS.items())
    with pytest.raises(dataclasses.FrozenInstanceError):
        PRESETS["int8"].calibrated = False
    assert [p.name for p in PRESETS.values() if p.integer_io] == ["int8-io", "uint8"]
    with pytest.raises(ValueError, match="Unknown quantization 'int4'. Valid: float32, float16"):
        convert(models.create("lenet5"), "int4")


@pytest.fixture(scope="module")
def lenet_models():
    model = models.create("lenet5", (28, 28, 1), 10)
    x = random_images((32, 28, 28, 1))
    return model, x, {name: convert(model, name, x) for name in ("int8", "int8-io", "uint8")}


@pytest.mark.parametrize("name", ["int8", "int8-io", "uint8"])
def test_integer_presets_give_their_io_dtypes(lenet_models, name):
    model, x, converted = lenet_models
    ops = audit(converted[name], name)
    runner = TFLiteClassifier(converted[name])
    assert np.dtype(runner.input["dtype"]).name == PRESETS[name].input_dtype
    assert np.dtype(runner.output["dtype"]).name == PRESETS[name].output_dtype
    if PRESETS[name].integer_io:
        assert not any("float32" in op["inputs"] + op["outputs"] for op in ops)
    np.testing.assert_allclose(runner(x[:4]), model.predict(x[:4], verbose=0), atol=0.08)


def test_audit_holds_integer_io_presets_to_no_float_at_all(lenet_models):
    _, _, converted = lenet_models
    with pytest.raises(AuditError, match="int8-io model computes op 0 \\(QUANTIZE\\) in float32"):
        audit(converted["int8"], "int8-io")  # float I/O: QUANTIZE/DEQUANTIZE take float
    with pytest.raises(AuditError, match="takes uint8 and gives uint8; the preset says int8 and int8"):
        audit(converted["uint8"], "int8-io")


@pytest.mark.parametrize("name", ["int8", "int8-io", "uint8"])
def test_audit_sees_a_float_input_of_an_integer_op(monkeypatch, name):
    """An op that reads a float32 tensor but writes int8 is float inside, whatever its output type."""
    ops = [{"op": "CONV_2D", "inputs": ["int8", "float32", "int32"], "outputs": ["int8"]}]
    monkeypatch.setattr(audit_module, "op_details", lambda model: ops)
    with pytest.raises(AuditError, match="computes op 0 \\(CONV_2D\\) in float32"):
        audit(b"", name)
