"""One exit-code convention for both command lines (kerascnn/cli.py): every user error is one line on stderr and
exit code 2, whether argparse, the data, the cluster or the export finds it."""

import pytest

from kerascnn import cli
from kerascnn.export.__main__ import main as export_cli
from kerascnn.train.__main__ import main as train_cli


def one_line_error(capsys, code) -> str:
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, (code, err)
    assert err.startswith("error: ")
    return err


@pytest.mark.parametrize(
    "args,message",
    [
        (["--epochs", "0"], "--epochs and --batch-size must be >= 1"),  # a flag
        (["--data-dir", "{tmp}/missing"], "missing does not exist"),  # the data
        (["--coordinator", "127.0.0.1:1", "--num-processes", "2"], "needs the JAX backend"),  # the cluster
    ],
    ids=["flag", "data", "cluster"],
)
def test_train_user_errors_exit_2_with_one_line(tmp_path, capsys, args, message):
    args = [arg.replace("{tmp}", str(tmp_path)) for arg in args]
    err = one_line_error(capsys, train_cli([*args, "--no-tensorboard", "--out", str(tmp_path / "run")]))
    assert message in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "error", [RuntimeError("no dataset\nhere"), ValueError("bad run"), OSError(28, "Disk full", "x")]
)
def test_export_user_errors_exit_2_with_one_line(tmp_path, capsys, monkeypatch, error):
    import kerascnn.export.exporter

    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr(kerascnn.export.exporter, "export_run", fail)
    err = one_line_error(capsys, export_cli([str(tmp_path)]))
    assert err.strip() == f"error: {cli.one_line(error)}"
    assert cli.one_line(OSError(28, "Disk full", "x")) == "x: Disk full"
    assert cli.one_line(RuntimeError("no dataset\nhere")) == "no dataset here"
