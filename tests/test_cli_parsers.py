"""The flags of `python -m kerascnn.train` and `python -m kerascnn.export` are the ones users know: generated from
the settings' declarations, each parser must equal the snapshot in tests/fixtures/cli_parsers.json flag by flag, and
its --help text line by line. A deliberate change rewrites the fixture (`python -m tests.cli_snapshot`)."""

import json

import pytest

from tests.cli_snapshot import FIXTURE, snapshot

EXPECTED = json.loads(FIXTURE.read_text())
NOW = snapshot()


@pytest.mark.parametrize("command", ["train", "export"])
def test_every_flag_is_as_before(command):
    expected = {tuple(a["option_strings"]) or a["dest"]: a for a in EXPECTED[command]["actions"]}
    now = {tuple(a["option_strings"]) or a["dest"]: a for a in NOW[command]["actions"]}
    assert list(now) == list(expected)
    for key, action in expected.items():
        assert now[key] == action, key
    assert NOW[command]["groups"] == EXPECTED[command]["groups"]


@pytest.mark.parametrize("command", ["train", "export"])
def test_help_text_is_as_before(command):
    assert NOW[command]["help"] == EXPECTED[command]["help"]
