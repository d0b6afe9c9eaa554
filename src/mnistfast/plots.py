"""Figures of a run: learning curves, the confusion matrix, misclassified test digits and the
first layer's weights. Needs matplotlib (``pip install "mnistfast[plot]"``); drawn off-screen."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .storage import atomic_write

FIGURES = ("learning_curves.png", "confusion_matrix.png", "misclassified.png", "first_layer.png")


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise ImportError('plots need matplotlib: pip install "mnistfast[plot]"') from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _saver(fig):
    """A writer(path) that saves the figure atomically, then closes it."""
    def write(path):
        try:
            atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=100))
        finally:
            _pyplot().close(fig)
    return write


def learning_curves(record: dict):
    plt = _pyplot()
    epochs = [e["epoch"] for e in record["epochs"]]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for ax, key, title in ((axes[0], "loss", "Loss (cross-entropy)"), (axes[1], "accuracy", "Accuracy")):
        ax.plot(epochs, [e[key] for e in record["epochs"]], "o-", label="training")
        if all(f"val_{key}" in e for e in record["epochs"]):
            ax.plot(epochs, [e[f"val_{key}"] for e in record["epochs"]], "s-", label="validation")
        ax.set(title=title, xlabel="epoch", ylabel=key)
        ax.grid(alpha=0.3)
        ax.legend()
    axes[2].plot(epochs, [e["lr"] for e in record["epochs"]], "o-", color="tab:green")
    from matplotlib.ticker import MaxNLocator

    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[2].set(title="Learning rate", xlabel="epoch", ylabel="lr")
    axes[2].grid(alpha=0.3)
    acc = record.get("test_accuracy")
    fig.suptitle("Learning curves" + (f" - test accuracy {acc:.4f}" if acc is not None else ""))
    fig.tight_layout()
    return fig


def confusion_matrix_figure(cm):
    plt = _pyplot()
    cm = np.asarray(cm)
    fig, ax = plt.subplots(figsize=(6.5, 5.8))
    im = ax.imshow(np.log1p(cm), cmap="Blues")
    for t in range(len(cm)):
        for p in range(len(cm)):
            ax.text(p, t, str(cm[t, p]), ha="center", va="center", fontsize=7,
                    color="white" if cm[t, p] > cm.max() / 3 else "black")
    ax.set(title="Confusion matrix (test set)", xlabel="predicted class", ylabel="true class",
           xticks=range(len(cm)), yticks=range(len(cm)))
    fig.colorbar(im, ax=ax, label="log(1 + count)")
    fig.tight_layout()
    return fig


def misclassified_figure(X_raw, y, pred, n: int = 36, image_shape=(1, 28, 28), classes=None):
    plt = _pyplot()
    name = (lambda k: str(k)) if classes is None else (lambda k: classes[k])
    wrong = np.flatnonzero(pred != y)[:n]
    cols = 9
    rows = max(1, -(-len(wrong) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.3, rows * 1.5 + 0.6), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, i in zip(axes.flat, wrong):
        image = np.asarray(X_raw[i]).reshape(image_shape)
        if image_shape[0] == 1:
            ax.imshow(image[0], cmap="gray_r")
        else:
            ax.imshow(image.transpose(1, 2, 0))
        ax.set_title(f"true {name(y[i])} / pred {name(pred[i])}", fontsize=7, color="tab:red")
    fig.suptitle(f"Misclassified test images: {np.count_nonzero(pred != y)} of {len(y)} (first {len(wrong)} shown)")
    fig.tight_layout()
    return fig


def first_layer_figure(model, n: int = 32, image_shape=(1, 28, 28)):
    """The first layer with weights: Dense columns as images (their first channel), or conv
    filters (input channel 0)."""
    plt = _pyplot()
    k = next(i for i, layer in enumerate(model.layers) if layer.params)
    w = model.get_params()[sum(len(layer.param_names) + len(layer.state_names) for layer in model.layers[:k])]
    if w.ndim == 4:  # (out, in, kh, kw)
        images, what = w[:n, 0], f"{type(model.layers[k]).__name__} filters, input channel 0"
    else:
        if w.shape[0] != int(np.prod(image_shape)):
            raise ValueError(f"the first layer's inputs ({w.shape[0]}) are not the {image_shape} images")
        images = w[:, :n].T.reshape(-1, *image_shape)[:, 0]
        what = "Dense weights into each of the first units"
    cols = 8
    rows = -(-len(images) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.2, rows * 1.3 + 0.6), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i, (ax, img) in enumerate(zip(axes.flat, images)):
        lim = np.abs(img).max() or 1.0
        ax.imshow(img, cmap="RdBu_r", vmin=-lim, vmax=lim)
        ax.set_title(str(i), fontsize=7)
    fig.suptitle(f"First layer: {what} (red +, blue -)")
    fig.tight_layout()
    return fig


def run_figures(model, record: dict, X_test_raw, y_test) -> dict:
    """``{file name: writer(path)}`` for every figure of a run (see ``FIGURES``)."""
    from .dataset import model_image_shape
    from .metrics import confusion_matrix
    from .preprocessing import model_input

    pred = model.predict(model_input(model, X_test_raw))
    shape = model_image_shape(model)
    figs = [learning_curves(record), confusion_matrix_figure(confusion_matrix(y_test, pred, model.n_classes)),
            misclassified_figure(X_test_raw, y_test, pred, image_shape=shape, classes=model.classes),
            first_layer_figure(model, image_shape=shape)]
    return {name: _saver(fig) for name, fig in zip(FIGURES, figs)}


# What a history.json must hold for the figures: per-epoch records with these numbers.
_EPOCH_KEYS = ("epoch", "loss", "accuracy", "lr")


def _read_history(path: Path) -> dict:
    """The run record of a history.json, or ValueError naming the file and what is wrong."""
    try:
        record = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: not readable JSON ({e})") from None
    if not isinstance(record, dict):
        raise ValueError(f"{path}: holds a JSON {type(record).__name__}, expected the run record (an object)")
    epochs = record.get("epochs")
    if not isinstance(epochs, list) or not epochs:
        raise ValueError(f"{path}: has no 'epochs' list; a run with no epoch trained has no learning curves")
    for i, e in enumerate(epochs):
        bad = [k for k in _EPOCH_KEYS if not isinstance(e, dict) or not isinstance(e.get(k), (int, float))]
        if bad:
            raise ValueError(f"{path}: epoch record {i} lacks the number(s) {', '.join(bad)}")
    if not isinstance(record.get("config", {}), dict):
        raise ValueError(f"{path}: its 'config' is not an object")
    return record


def plot_run(run_dir, data=None, out_dir=None, backend="cpp") -> list:
    """Draw the figures of a run directory written by ``mnistfast train``; returns their paths."""
    from .dataset import model_test_set
    from .serialization import load_model

    run_dir = Path(run_dir)
    history = run_dir / "history.json"
    if not history.is_file():
        raise FileNotFoundError(f"{run_dir}: no history.json here; expected a run directory from mnistfast train")
    record = _read_history(history)
    config = record.get("config", {})
    model = load_model(run_dir / "model.npz", backend=backend)
    # The model's record names its data by absolute path; older runs' history by the path as typed.
    origin = model.trained_on or {"data": config.get("data"), "seed": config.get("seed", 0)}
    same = data is None or origin["data"] == str(Path(data).resolve())
    Xt, yt = model_test_set(model, origin["data"] if data is None else data, held_out=same,
                            seed=origin["seed"] if same else 0)
    out_dir = Path(out_dir) if out_dir else run_dir
    paths = []
    for name, write in run_figures(model, record, Xt, yt).items():
        write(out_dir / name)
        paths.append(out_dir / name)
    return paths
