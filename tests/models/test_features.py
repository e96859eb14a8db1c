"""kerascnn.models.features: the GAP head and the features it receives (class activation maps)."""

import keras
import pytest

from kerascnn import layers, models
from kerascnn.models.features import head_features


def test_head_features_is_exported_by_models():
    assert models.head_features is head_features


def test_features_model_ends_where_the_head_starts():
    head, features = head_features(models.create("nin"))
    assert isinstance(head, layers.GAPHead)
    assert features.output.shape == head.input.shape


@pytest.mark.parametrize("heads", [0, 2])
def test_needs_exactly_one_gap_head(heads):
    inputs = keras.Input((8, 8, 1))
    outputs = [layers.GAPHead(3)(inputs) for _ in range(heads)] or [layers.GlobalAvgPool2D()(inputs)]
    with pytest.raises(ValueError, match=f"has {heads} GAPHead layers"):
        head_features(keras.Model(inputs, outputs))
