"""The two command lines' parsers as data, flag by flag, for tests/test_cli_parsers.py: what `--help` shows
(option strings, help, default, choices, nargs, metavar, type, group) and the rendered text itself.

Run `python -m tests.cli_snapshot` to rewrite tests/fixtures/cli_parsers.json after a deliberate change of a flag.
"""

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "cli_parsers.json"
COLUMNS = "120"  # argparse wraps --help to the terminal's width: a fixed one


def _parsers() -> dict[str, argparse.ArgumentParser]:
    sys.path.insert(0, str(ROOT / "docs" / "_ext"))
    import cli_parsers  # the functions the docs' CLI page renders

    return {"train": cli_parsers.train_parser(), "export": cli_parsers.export_parser()}


def _plain(value):
    """JSON-ready: tuples as lists, functions by name."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if callable(value):
        return getattr(value, "__name__", repr(value))
    return value


def describe(parser: argparse.ArgumentParser) -> dict:
    """{"actions": one entry per flag, in order, "help": the --help text at COLUMNS wide}."""
    group_of = {id(a): g.title for g in parser._action_groups for a in g._group_actions}
    actions = [
        {
            "option_strings": action.option_strings,
            "dest": action.dest,
            "group": group_of.get(id(action)),
            "action": type(action).__name__,
            "help": action.help,
            "default": _plain(action.default),
            "const": _plain(action.const),
            "choices": _plain(action.choices),
            "nargs": action.nargs,
            "metavar": _plain(action.metavar),
            "type": _plain(action.type),
            "required": action.required,
        }
        for action in parser._actions
    ]
    groups = [[g.title, g.description] for g in parser._action_groups]
    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = COLUMNS
    try:
        text = parser.format_help()
    finally:
        if old is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = old
    return {"actions": actions, "groups": groups, "help": text.splitlines()}


def snapshot() -> dict:
    return {name: describe(parser) for name, parser in _parsers().items()}


if __name__ == "__main__":
    FIXTURE.write_text(json.dumps(snapshot(), indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {FIXTURE}")
