"""Every public name has a docstring: what the API reference (docs/api.rst, built by Sphinx in
CI with warnings as errors) is made of."""

from __future__ import annotations

import inspect
import types

import mnistfast as mf


def _public(obj):
    names = getattr(obj, "__all__", None)
    return names if names is not None else [n for n in dir(obj) if not n.startswith("_")]


def _ours(value) -> bool:
    module = value.__name__ if isinstance(value, types.ModuleType) else getattr(value, "__module__", "") or ""
    return module.startswith("mnistfast")


def undocumented() -> list[str]:
    """Public modules, classes, functions, methods and properties reachable from ``mnistfast``
    without a docstring (an override inherits its base's, as Sphinx shows it)."""
    missing, seen = [], set()

    def visit(qual, obj):
        if id(obj) in seen or not _ours(obj):
            return
        seen.add(id(obj))
        if not inspect.getdoc(obj):
            missing.append(qual)
        if isinstance(obj, types.ModuleType):
            for name in _public(obj):
                visit(f"{qual}.{name}", getattr(obj, name))
        elif inspect.isclass(obj):
            for name, raw in vars(obj).items():
                if name.startswith("_"):
                    continue
                member = getattr(obj, name)
                if isinstance(raw, property) or inspect.isfunction(member) or inspect.ismethod(member):
                    if not inspect.getdoc(raw if isinstance(raw, property) else member):
                        missing.append(f"{qual}.{name}")

    visit("mnistfast", mf)
    return missing


def test_every_public_name_has_a_docstring():
    assert undocumented() == []


def test_the_check_sees_a_missing_docstring():
    class Undocumented:
        def method(self):
            pass

    Undocumented.__module__ = "mnistfast.probe"
    mf.Undocumented = Undocumented
    mf.__all__.append("Undocumented")
    try:
        assert set(undocumented()) >= {"mnistfast.Undocumented", "mnistfast.Undocumented.method"}
    finally:
        mf.__all__.remove("Undocumented")
        del mf.Undocumented
