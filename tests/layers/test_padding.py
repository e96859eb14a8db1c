import itertools

import pytest

from kerascnn.layers import conv_output_size
from kerascnn.layers.padding import normalize_padding, output_spatial_shape, resolve_padding, same_padding

pytestmark = pytest.mark.backend_portable


def count_windows(n, k, p, s, d):
    """Counts the start positions of the dilated window one by one."""
    span = d * (k - 1) + 1
    return sum(1 for start in range(0, n + p, s) if start + span <= n + p)


@pytest.mark.parametrize(
    "n,k,p,s,d",
    [
        (n, k, p, s, d)
        for n, k, p, s, d in itertools.product(range(1, 9), range(1, 5), range(0, 4), range(1, 4), range(1, 3))
        if n + p >= d * (k - 1) + 1
    ],
)
def test_formula_counts_window_positions(n, k, p, s, d):
    assert conv_output_size(n, k, p, s, d) == count_windows(n, k, p, s, d)


def test_formula_is_the_notes_form_without_dilation():
    for n, k, p, s in itertools.product(range(3, 12), range(1, 4), range(0, 3), range(1, 4)):
        assert conv_output_size(n, k, p, s) == (n - k + p + s) // s


def test_unknown_size_stays_unknown():
    assert conv_output_size(None, 3, 2, 1) is None


def test_window_larger_than_padded_input_is_rejected():
    with pytest.raises(ValueError, match="does not fit"):
        conv_output_size(4, 3, 0, 1, d=2)


@pytest.mark.parametrize("name,kwargs", [("k", dict(k=0)), ("p", dict(p=-1)), ("s", dict(s=0)), ("d", dict(d=0))])
def test_bad_formula_arguments_are_named(name, kwargs):
    args = dict(n=8, k=3, p=0, s=1, d=1) | kwargs
    with pytest.raises(ValueError, match=f"`{name}`"):
        conv_output_size(**args)


@pytest.mark.parametrize(
    "padding,expected",
    [
        ("VALID", "valid"),
        ("same", "same"),
        (2, ((2, 2), (2, 2))),
        ((1, 2), ((1, 1), (2, 2))),
        (((0, 1), (2, 3)), ((0, 1), (2, 3))),
        ([[0, 1], [2, 3]], ((0, 1), (2, 3))),
    ],
)
def test_padding_forms(padding, expected):
    assert normalize_padding(padding) == expected


@pytest.mark.parametrize("padding", ["full", -1, (1, -2), ((1, 2), (3,)), (1, 2, 3), 1.5, None])
def test_bad_padding_is_rejected(padding):
    with pytest.raises(ValueError, match="padding"):
        normalize_padding(padding)


def test_same_padding_puts_the_odd_cell_after():
    assert same_padding(8, 3, 2) == (0, 1)
    assert same_padding(7, 3, 2) == (1, 1)
    assert same_padding(5, 4, 1) == (1, 2)
    assert same_padding(9, 3, 1, d=2) == (2, 2)


def test_explicit_padding_resolves_to_a_mode_when_equivalent():
    assert resolve_padding(((1, 1), (1, 1)), (8, 8), (3, 3), (1, 1)) == ("same", None)
    assert resolve_padding(((0, 0), (0, 0)), (8, 8), (3, 3), (1, 1)) == ("valid", None)
    # stride 1: "same" padding does not depend on the size, so unknown sizes still resolve
    assert resolve_padding(((1, 1), (1, 1)), (None, None), (3, 3), (1, 1)) == ("same", None)
    # PyTorch-style symmetric padding with stride 2 on an even size is not TensorFlow's "same"
    assert resolve_padding(((1, 1), (1, 1)), (8, 8), (3, 3), (2, 2)) == ("valid", ((1, 1), (1, 1)))
    assert resolve_padding(((0, 1), (0, 1)), (8, 8), (3, 3), (2, 2)) == ("same", None)
    assert resolve_padding(((0, 1), (0, 1)), (None, 8), (3, 3), (2, 2)) == ("valid", ((0, 1), (0, 1)))


def test_output_shape_adds_both_sides_of_asymmetric_padding():
    # rows: 8 + (0 + 2) - 3 + 1 = 8; columns: 8 + (3 + 1) - 3 + 1 = 10
    assert output_spatial_shape(((0, 2), (3, 1)), (8, 8), (3, 3), (1, 1)) == (8, 10)
    assert output_spatial_shape(((2, 0), (1, 3)), (8, 8), (3, 3), (2, 2)) == (4, 5)
