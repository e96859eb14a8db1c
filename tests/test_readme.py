"""README.md's set-up commands are the ones CI runs."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def readme_commands():
    text = (ROOT / "README.md").read_text()
    setup = text.split("## Set up", 1)[1].split("\n## ", 1)[0]
    return [line.strip() for line in setup.splitlines() if line.startswith("    python3 -m venv .venv")]


def test_ci_runs_the_readme_test_command():
    test_commands = [command for command in readme_commands() if command.endswith("-m pytest")]
    assert len(test_commands) == 1, readme_commands()
    test_command = test_commands[0]
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert test_command in ci_lines
