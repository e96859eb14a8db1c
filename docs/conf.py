"""Sphinx configuration: MyST pages, the notebooks as stored (not executed), the API from the docstrings and the
command-line reference from the parsers themselves, so neither can drift from the code."""

import inspect
import shutil
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path[:0] = [str(DOCS.parent), str(DOCS / "_ext")]

import figures  # noqa: E402  (docs/_ext/figures.py: the diagrams, drawn at build time)

project = "kerascnn"
author = "kerascnn authors"
copyright = "2026, kerascnn authors"

extensions = [
    "myst_nb",  # MyST Markdown pages and the .ipynb notebooks
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",  # the docstrings' Google (Keras) style: Args, Returns, Raises, Example
    "sphinx.ext.mathjax",
    "sphinxarg.ext",  # the CLI reference, from kerascnn's own argparse parsers
]
myst_enable_extensions = ["dollarmath", "colon_fence", "deflist"]
myst_heading_anchors = 4
nb_execution_mode = "off"  # tests/test_notebooks.py executes them; the site shows them as committed
exclude_patterns = ["_build", "_generated/*.py"]
suppress_warnings = ["myst.header"]  # RESULTS.md, included whole, starts at its own heading level

autodoc_default_options = {"members": True, "member-order": "bysource", "show-inheritance": False}
autodoc_typehints = "description"
autodoc_mock_imports = []
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False

html_theme = "furo"
html_title = "kerascnn"
html_static_path = []


def copy_notebooks(app, config):
    """notebooks/*.ipynb into docs/notebooks/ (ignored by git): Sphinx reads pages from its source folder only."""
    target = DOCS / "notebooks"
    target.mkdir(exist_ok=True)
    for notebook in sorted((DOCS.parent / "notebooks").glob("*.ipynb")):
        if not (target / notebook.name).exists() or (target / notebook.name).read_bytes() != notebook.read_bytes():
            shutil.copyfile(notebook, target / notebook.name)


def init_signature(app, what, name, obj, options, signature, return_annotation):
    """A Keras layer's own __init__ arguments, not Layer.__new__'s (*args, **kwargs), which autodoc finds first."""
    if what == "class" and signature == "(*args, **kwargs)" and "__init__" in vars(obj):
        init = inspect.signature(obj.__init__)
        arguments = list(init.parameters.values())[1:]  # without self
        return str(init.replace(parameters=arguments, return_annotation=inspect.Signature.empty)), return_annotation
    return None


def setup(app):
    app.connect("autodoc-process-signature", init_signature)
    app.connect("config-inited", copy_notebooks)
    app.connect("builder-inited", lambda app: figures.draw_all(DOCS / "_generated"))
