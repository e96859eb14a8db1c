"""The two command-line parsers, as sphinx-argparse's `:func:` wants them: functions that return the parser.

`kerascnn.train` builds its parser in `parser()`. `kerascnn.export` builds its parser inside `main()`, so the parser
is caught at the moment `main` parses its arguments, before any work is done: the page shows the parser the command
really uses, with nothing copied.
"""

import argparse


class _Caught(Exception):
    def __init__(self, parser):
        super().__init__("parser caught")
        self.parser = parser


def train_parser() -> argparse.ArgumentParser:
    from kerascnn.train.__main__ import parser

    return parser()


def export_parser() -> argparse.ArgumentParser:
    from kerascnn.export.__main__ import main

    def catch(self, args=None, namespace=None):
        raise _Caught(self)

    original = argparse.ArgumentParser.parse_args
    argparse.ArgumentParser.parse_args = catch
    try:
        main(["--help"])
    except _Caught as caught:
        return caught.parser
    finally:
        argparse.ArgumentParser.parse_args = original
    raise RuntimeError("kerascnn.export.__main__.main() returned without parsing its arguments")
