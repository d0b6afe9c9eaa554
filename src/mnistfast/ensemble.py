"""``mf.Ensemble(models)``: averages the class probabilities of several models."""

from __future__ import annotations

import numpy as np

from .storage import ENSEMBLE_FORMAT, write_model


class Ensemble:
    """The members' ``predict_proba`` averaged; ``predict`` is its argmax. Members may differ in
    architecture and backend but must take the same inputs and classes."""

    def __init__(self, models):
        self.models = list(models)
        if not self.models:
            raise ValueError("Ensemble needs at least one model")
        first = self.models[0]
        for i, m in enumerate(self.models):
            if not getattr(m, "built", False):
                raise ValueError(f"Ensemble: member {i} is not built (train it or pass input_shape)")
            if m.n_classes != first.n_classes or int(np.prod(m.input_shape)) != int(np.prod(first.input_shape)):
                raise ValueError(f"Ensemble: member {i} takes {m.input_shape} -> {m.n_classes} classes, member 0 "
                                 f"{first.input_shape} -> {first.n_classes}")
            if getattr(m, "classes", None) != getattr(first, "classes", None):
                raise ValueError(f"Ensemble: member {i} names its classes differently from member 0")
            if not _same_preprocessing(m.preprocessing, first.preprocessing):
                raise ValueError(f"Ensemble: member {i} preprocesses its input differently from member 0 "
                                 f"({_describe(m.preprocessing)} against {_describe(first.preprocessing)}); "
                                 "the members would be given the same input, so they must agree")
        self.n_classes = first.n_classes

    @property
    def preprocessing(self):
        """The first member's (each member applies its own to raw pixels)."""
        return self.models[0].preprocessing

    @property
    def classes(self):
        """The first member's class names (see ``Sequential.classes``)."""
        return self.models[0].classes

    @property
    def image_shape(self):
        """The first member's image shape (see ``Sequential.image_shape``)."""
        return self.models[0].image_shape

    @property
    def trained_on(self):
        """The first member's record of its training data (see ``Sequential.trained_on``)."""
        return self.models[0].trained_on

    def predict_proba(self, X, batch_size: int = 256) -> np.ndarray:
        """The mean of the members' class probabilities, ``(n, classes)`` float32."""
        total = np.zeros((len(X), self.n_classes))
        for m in self.models:
            total += m.predict_proba(X, batch_size)
        return (total / len(self.models)).astype(np.float32)

    def predict(self, X, batch_size: int = 256) -> np.ndarray:
        """The class with the highest mean probability, one int64 label per sample."""
        return self.predict_proba(X, batch_size).argmax(axis=1)

    def evaluate(self, X, y, batch_size: int = 256) -> dict:
        """Cross-entropy of the averaged probabilities, and accuracy."""
        y = np.asarray(y, dtype=np.int64)
        p = self.predict_proba(X, batch_size).astype(np.float64)
        if y.shape != (len(p),):
            raise ValueError(f"y has shape {y.shape}, expected ({len(p)},)")
        picked = np.clip(p[np.arange(len(y)), y], 1e-12, 1.0)
        return {"loss": float(-np.log(picked).mean()), "accuracy": float((p.argmax(axis=1) == y).mean())}

    def export(self, path, format: str = "onnx") -> None:
        """Write the ensemble for other tools; in ONNX, one graph returning the mean of the members'
        probabilities (see ``mnistfast.export``)."""
        from .export import export

        export(self, path, format)

    def save(self, path) -> None:
        """One ``.npz`` holding every member (``mf.load_model`` gives the Ensemble back)."""
        configs, arrays = [], {}
        for i, m in enumerate(self.models):
            config, member_arrays = m.to_payload()
            configs.append(config)
            arrays.update({f"member{i}.{k}": v for k, v in member_arrays.items()})
        write_model(path, {"format": ENSEMBLE_FORMAT, "members": configs}, arrays)

    def __repr__(self) -> str:
        return f"Ensemble({len(self.models)} models)"


def _same_preprocessing(a, b) -> bool:
    if a is None or b is None:
        return a is b
    if a.kind != b.kind:
        return False
    return all((x is None and y is None) or (x is not None and y is not None and np.array_equal(x, y))
               for x, y in ((a.mean, b.mean), (a.std, b.std)))


def _describe(p) -> str:
    if p is None:
        return "none recorded"
    return f"{p.kind}{' with its own statistics' if p.kind == 'standardize' else ''}"
