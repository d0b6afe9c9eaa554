"""Every shell and Python block of README.md runs as written (issue 23, finding 6), in order, in one
working directory, on small data: the bundled MNIST stands in for its first 3000 / 500 images,
and the files the README assumes a user has (a Kaggle test.csv, a folder of images per class,
new images) are generated there first. ``pip install`` lines must name extras the package has;
``pytest`` is this run; any other command fails the test, so the README cannot grow one that is
not run."""

import re
import shlex
from pathlib import Path

import numpy as np
import pytest

import mnistfast as mf
from mnistfast.cli import main
from own_data_sets import write_image_folder

pytest.importorskip("PIL", reason="the README's own-images blocks need Pillow (the images extra)")
pytest.importorskip("onnxruntime", reason="the README's serving block needs onnxruntime")
pytest.importorskip("optuna", reason="the README's search line needs Optuna")
pytest.importorskip("matplotlib", reason="the README's --plots line needs matplotlib")

REPO = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"^```(bash|python)\n(.*?)^```", re.S | re.M)


def blocks():
    return BLOCK.findall((REPO / "README.md").read_text())


def _extras() -> set:
    try:
        import tomllib
    except ImportError:  # Python < 3.11
        tomllib = pytest.importorskip("tomli", reason="reading pyproject.toml before Python 3.11 needs tomli")
    return set(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"])


def _user_files(cwd: Path, small_mnist_dir: Path):
    """What the README's commands read besides the bundled data."""
    (_, _), (Xt, _) = mf.load_mnist(small_mnist_dir, normalize=None)
    header = ",".join(f"pixel{i}" for i in range(784))
    np.savetxt(cwd / "test.csv", Xt[:50], fmt="%d", delimiter=",", header=header, comments="")
    write_image_folder(cwd / "my_images", classes=("cat", "dog", "owl"), per_class=30, channels=1, sizes=[28, 36])
    write_image_folder(cwd / "new_images" / "x", classes=("a",), per_class=3, channels=1)
    (cwd / "new_images" / "x" / "a" / "000.png").rename(cwd / "new_images" / "a.png")


def _run_shell(script: str, extras: set):
    for line in script.splitlines():
        words = shlex.split(line, comments=True)
        commands = [[]]
        for w in words:
            if w == "&&":
                commands.append([])
            else:
                commands[-1].append(w)
        for cmd in filter(None, commands):
            if cmd[:2] == ["pip", "install"]:
                named = set(re.findall(r"\[(.*?)\]", " ".join(cmd[2:])))
                asked = {e for group in named for e in group.split(",")}
                assert asked <= extras, f"README: {line!r} names extras the package lacks: {asked - extras}"
            elif cmd == ["pytest"]:
                continue  # the test command: this run
            elif cmd[0] == "mnistfast":
                assert main(cmd[1:]) == 0, f"README: {line!r} failed"
            else:
                raise AssertionError(f"README: {line!r} runs {cmd[0]!r}, which this test does not know how to run")


def test_every_readme_block_runs(small_mnist_dir, tmp_path, monkeypatch):
    found = blocks()
    assert [kind for kind, _ in found].count("python") >= 3 and len(found) >= 6
    monkeypatch.setattr(mf.data, "bundled_mnist_dir", lambda: small_mnist_dir)
    monkeypatch.setattr(mf.data, "MNIST_FILES", {k: (stem, None) for k, (stem, _) in mf.data.MNIST_FILES.items()})
    monkeypatch.chdir(tmp_path)
    _user_files(tmp_path, small_mnist_dir)
    extras = _extras()
    for i, (kind, code) in enumerate(found):
        if kind == "bash":
            _run_shell(code, extras)
        else:
            exec(compile(code, f"README.md python block {i}", "exec"), {"__name__": "readme"})
    # what the blocks promised is there
    assert (tmp_path / "runs" / "mine" / "model.onnx").is_file() and (tmp_path / "submission.csv").is_file()
    labels = (tmp_path / "labels.csv").read_text().splitlines()
    assert labels[0] == "File,Label" and len(labels) == 4 and {row.split(",")[1] for row in labels[1:]} <= \
        {"cat", "dog", "owl"}
