"""``tether.lineage``'s entry points: light to import, and never shadowed by a submodule."""

from __future__ import annotations

import sys
from pathlib import Path

from tests.conftest import run_python

CHECK = """
import importlib, pkgutil, sys, types
import tether.lineage as lineage
assert "sqlalchemy" not in sys.modules, "import tether.lineage loads SQLAlchemy"
for module in pkgutil.iter_modules(lineage.__path__):
    importlib.import_module("tether.lineage." + module.name)
for name in lineage.__all__:
    assert not isinstance(getattr(lineage, name), types.ModuleType), name
assert lineage.__all__ == sorted(lineage.__all__)
"""


def test_entry_points_load_lazily_and_are_what_they_say() -> None:
    done = run_python(CHECK, cwd=Path(sys.prefix))
    assert done.returncode == 0, done.stderr
