"""Sphinx configuration of the API reference (``sphinx-build -W -b html docs docs/_build``)."""

import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent / "src"))  # the source tree, also without an install

project = "mnistfast"
extensions = ["sphinx.ext.autodoc", "sphinx.ext.napoleon"]
napoleon_google_docstring = False  # the package's docstrings are numpydoc
autodoc_member_order = "bysource"
autodoc_default_options = {"members": True, "show-inheritance": True}
# The compiled extension and the optional GPU stack are not needed to read docstrings.
autodoc_mock_imports = ["mnistfast._core", "numba"]
source_suffix = {".rst": "restructuredtext"}
exclude_patterns = ["_build", "*.md"]
html_theme = "alabaster"


def _write_kernel_table(app):
    """The kernel page's table, generated from the contract (backends/contract.py) at each build."""
    from mnistfast.backends.contract import rst_table

    out = ROOT / "_generated" / "kernel_table.rst"
    out.parent.mkdir(exist_ok=True)
    text = rst_table()
    if not out.exists() or out.read_text() != text:
        out.write_text(text)


def setup(app):
    app.connect("builder-inited", _write_kernel_table)
