"""Classification metrics: the confusion matrix and per-class precision, recall and F1."""

from __future__ import annotations

import numpy as np


def confusion_matrix(y_true, y_pred, n_classes: int = 10) -> np.ndarray:
    """``cm[t, p]``: how many samples of true class ``t`` were predicted as ``p``."""
    y_true, y_pred = np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)
    if y_true.shape != y_pred.shape or y_true.ndim != 1:
        raise ValueError(f"y_true {y_true.shape} and y_pred {y_pred.shape} must be 1-D of the same length")
    for name, y in (("y_true", y_true), ("y_pred", y_pred)):
        if y.size and (y.min() < 0 or y.max() >= n_classes):
            raise ValueError(f"{name} has labels outside 0..{n_classes - 1}")
    return np.bincount(y_true * n_classes + y_pred, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def classification_report(y_true, y_pred, n_classes: int = 10, classes=None) -> dict:
    """Accuracy, and per class: precision (of the predictions of that class, the fraction right),
    recall (of that class's samples, the fraction found), F1 and support. A class never predicted
    has precision 0, as in scikit-learn's ``zero_division=0``. ``classes``: the classes' names
    (default: their indices), reported beside each index."""
    cm = confusion_matrix(y_true, y_pred, n_classes)
    tp = np.diag(cm).astype(np.float64)
    predicted, support = cm.sum(axis=0), cm.sum(axis=1)
    precision = np.divide(tp, predicted, out=np.zeros(n_classes), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros(n_classes), where=support > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros(n_classes), where=denom > 0)
    names = list(classes) if classes is not None else [str(k) for k in range(n_classes)]
    per_class = [{"class": k, "name": names[k], "precision": float(precision[k]), "recall": float(recall[k]), "f1": float(f1[k]),
                  "support": int(support[k])} for k in range(n_classes)]
    return {"accuracy": float(tp.sum() / max(1, cm.sum())), "macro_f1": float(f1.mean()), "per_class": per_class,
            "confusion_matrix": cm.tolist()}


def format_report(report: dict) -> str:
    """The report as text: a per-class table, then the confusion matrix."""
    label = max([5, *(len(str(row.get("name", row["class"]))) for row in report["per_class"])])
    lines = [f"{'class':>{label}} {'precision':>9} {'recall':>7} {'f1':>7} {'support':>8}"]
    for row in report["per_class"]:
        lines.append(f"{str(row.get('name', row['class'])):>{label}} {row['precision']:9.4f} {row['recall']:7.4f} {row['f1']:7.4f} {row['support']:8d}")
    lines.append(f"accuracy {report['accuracy']:.4f}   macro F1 {report['macro_f1']:.4f}")
    cm = np.asarray(report["confusion_matrix"])
    width = max(4, len(str(cm.max())) + 1)
    lines.append("\nconfusion matrix (rows: true class, columns: predicted; by index, in the order above)")
    lines.append("      " + "".join(f"{k:>{width}}" for k in range(len(cm))))
    lines += [f"{t:>5} " + "".join(f"{v:>{width}}" for v in row) for t, row in enumerate(cm)]
    return "\n".join(lines)
