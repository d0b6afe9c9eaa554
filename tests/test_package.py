"""The package's shape: no import cycles, the library never imports its benchmark harness, and
the training loop stays in small functions."""

import ast
import pathlib

import mnistfast as mf

PACKAGE = pathlib.Path(mf.__file__).parent
# The checkout (csrc/ is not installed: CI tests an installed wheel, not the source tree).
REPO = pathlib.Path(__file__).resolve().parent.parent


def module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict:
    """Module -> the package modules it imports, at the top or inside functions."""
    paths = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in paths.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
                # `from . import x` depends on the module x (or the compiled _core), not the package.
                named = [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in paths
                         or a.name == "_core"]
                deps.update(d for d in (named or [target]) if d in paths and d != name)
            elif isinstance(node, ast.Import):
                deps.update(a.name for a in node.names if a.name in paths and a.name != name)
        graph[name] = deps
    return graph


def test_no_import_cycles():
    graph, state, cycles = import_graph(), {}, []

    def visit(node, path):
        state[node] = "open"
        for dep in sorted(graph[node]):
            if state.get(dep) == "open":
                cycles.append(" -> ".join(path[path.index(dep):] + [dep]))
            elif dep not in state:
                visit(dep, path + [dep])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, "\n".join(cycles)


def test_the_library_never_imports_the_benchmarks():
    """Only the CLI's ``bench`` command reaches ``mnistfast.bench`` (torch models, OpenBLAS)."""
    graph = import_graph()
    users = sorted(m for m, deps in graph.items() if any(d.startswith("mnistfast.bench") for d in deps)
                   and not m.startswith("mnistfast.bench"))
    assert users == ["mnistfast.cli"]


def test_model_functions_are_short():
    tree = ast.parse((PACKAGE / "model.py").read_text())
    long = [(n.name, n.end_lineno - n.lineno + 1) for n in ast.walk(tree)
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.end_lineno - n.lineno + 1 > 60]
    assert not long


def test_each_kernel_lives_in_four_places():
    """A kernel is its table entry, its numpy reference, one C++ file that defines and binds it, and
    one cuda module that holds its launcher: nothing else names it (docs/design.md's checklist)."""
    import re

    from mnistfast.backends.base import Backend
    from mnistfast.backends.contract import KERNELS
    from mnistfast.backends.numpy_backend import NumpyBackend

    csrc = REPO / "csrc"
    assert csrc.is_dir(), csrc
    bound = {}
    for path in csrc.rglob("*.cpp"):
        for name in re.findall(r'cls\.def\("(\w+)"', path.read_text()):
            bound.setdefault(name, []).append(path.relative_to(csrc).as_posix())
    cuda = PACKAGE / "backends" / "cuda"
    launched = {}
    for path in cuda.glob("*.py"):
        for name in re.findall(r'@launcher\("(\w+)"', path.read_text()):
            launched.setdefault(name, []).append(path.name)
    for name in KERNELS:
        assert name in vars(NumpyBackend) or name in vars(Backend) or f"_{name}" in vars(NumpyBackend), name
        files = bound.get(name, [])
        assert len(files) == 1 and not files[0].startswith("python/"), (name, files)
        # The fused conv + pool pair may fall back to the composition Backend defines for every backend.
        if name not in vars(Backend):
            assert len(launched.get(name, [])) == 1, (name, launched.get(name))
    assert set(bound) <= set(KERNELS)
    assert set(launched) <= set(KERNELS)


def test_the_modules_the_readme_uses_come_with_the_package():
    """``import mnistfast as mf`` then ``mf.submission`` and ``mf.search`` (issue 23, finding 6),
    without Optuna being imported until a search runs."""
    import subprocess
    import sys

    code = ("import sys, mnistfast as mf\nprint(callable(mf.submission.load_images), sorted(mf.search.GRID),"
            " 'optuna' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split(" ", 1)
    assert out[0] == "True" and out[1].strip() == "['batch_size', 'hidden', 'lr', 'optimizer'] False"
