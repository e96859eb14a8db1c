"""README.md's set-up commands are the ones CI runs, and both do the machine's set-up first."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SETUP = "scripts/setup-data && "


def readme_commands():
    text = (ROOT / "README.md").read_text()
    setup = text.split("## Set up", 1)[1].split("\n## ", 1)[0]
    return [line.strip() for line in setup.splitlines() if line.startswith("    ") and "python3 -m venv .venv" in line]


def test_ci_runs_the_readme_test_command():
    test_commands = [command for command in readme_commands() if command.endswith("-m pytest")]
    assert len(test_commands) == 1, readme_commands()
    test_command = test_commands[0]
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert test_command in ci_lines
    assert not any("apt-get" in line for line in ci_lines if not line.startswith("#")), "set-up lives in the script"


def test_both_readme_commands_set_up_the_machine_first():
    commands = readme_commands()
    assert len(commands) == 2 and all(command.startswith(SETUP) for command in commands), commands
    assert any("kerascnn.train --preset quick" in command for command in commands)
    assert (ROOT / "scripts" / "setup-data").stat().st_mode & 0o111
