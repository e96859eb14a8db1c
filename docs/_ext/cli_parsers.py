"""The two command-line parsers, as sphinx-argparse's `:func:` wants them: functions that return the parser the
command really uses (each generated from its settings' declarations: kerascnn.settings), with nothing copied."""

import argparse


def train_parser() -> argparse.ArgumentParser:
    from kerascnn.train.__main__ import parser

    return parser()


def export_parser() -> argparse.ArgumentParser:
    from kerascnn.export.__main__ import parser

    return parser()
