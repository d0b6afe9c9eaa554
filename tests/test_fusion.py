"""The fusion plan: each fusion on and off computes the same function, the plan is the only place
that couples layers, and summary() shows it."""

import ast
import pathlib

import numpy as np
import pytest

import mnistfast as mf
from mnistfast.fusion import FUSIONS, FusionPlan
from mnistfast.testing import assert_close

LAYERS_DIR = pathlib.Path(mf.__file__).parent / "layers"


def stack(name):
    """A small stack on which fusion ``name`` applies."""
    if name in ("conv_pool", "flatten_order"):
        return [mf.Conv2D(3, 3, activation="relu"), mf.MaxPool2D(2), mf.Conv2D(4, 3, padding="same"),
                mf.Flatten(), mf.Dense(12, activation="relu"), mf.Dense(10)], (2, 10, 10)
    return [mf.Flatten(), mf.Dense(16, activation="relu"), mf.Dense(12, activation="relu"), mf.Dense(10)], (36,)


@pytest.mark.parametrize("backend", ["numpy", "cpp"])
@pytest.mark.parametrize("name", [f for f in FUSIONS if f != "sgd_fold"])
def test_each_fusion_off_gives_the_same_outputs_and_gradients(rng, backend, name):
    layers, shape = stack(name)
    X = rng.uniform(0, 1, size=(12, *shape)).astype(np.float32)
    y = rng.integers(0, 10, 12)
    on = mf.Sequential(layers, input_shape=shape, seed=2, backend=backend)
    off = mf.Sequential([type(layer)(**layer.get_config()) for layer in layers], input_shape=shape, seed=2,
                        backend=backend, fusions=set(FUSIONS) - {name})
    assert any(note.startswith(name) for note in on.plan.describe())
    assert not any(note.startswith(name) for note in off.plan.describe())
    off.set_params(on.get_params())
    assert_close(off.predict_proba(X), on.predict_proba(X), "conv")
    (l_on, g_on), (l_off, g_off) = on.loss_and_grads(X, y), off.loss_and_grads(X, y)
    assert l_on == pytest.approx(l_off, rel=1e-6)
    for a, b in zip(g_on, g_off):
        assert_close(a, b, "conv")


@pytest.mark.parametrize("backend", ["numpy", "cpp"])
def test_sgd_fold_off_trains_the_same(rng, backend):
    layers, shape = stack("sgd_fold")
    X = rng.uniform(0, 1, size=(96, *shape)).astype(np.float32)
    y = rng.integers(0, 10, 96)
    models = [mf.Sequential([type(layer)(**layer.get_config()) for layer in layers], input_shape=shape, seed=5,
                            backend=backend, fusions=fusions) for fusions in (None, set(FUSIONS) - {"sgd_fold"})]
    opts = [mf.optim.SGD(0.1), mf.optim.SGD(0.1)]
    assert models[0].plan.folds_sgd(opts[0]) and not models[1].plan.folds_sgd(opts[1])
    for model, opt in zip(models, opts):
        model.fit(X, y, epochs=2, batch_size=16, optimizer=opt, shuffle=False, verbose=0)
        assert opt.iterations == 12
    for a, b in zip(*(m.get_params() for m in models)):
        assert_close(a, b, "training_weights")


def test_sgd_fold_needs_plain_sgd_and_foldable_layers():
    mlp = mf.MLP(backend="numpy")
    assert mlp.plan.folds_sgd(mf.optim.SGD(0.1))
    assert not mlp.plan.folds_sgd(mf.optim.SGD(0.1, momentum=0.9))
    assert not mlp.plan.folds_sgd(mf.optim.Adam())
    cnn = mf.CNN("basic", backend="numpy")  # convolutions take their update from the optimizer
    assert not cnn.plan.folds_sgd(mf.optim.SGD(0.1))


def test_no_fusions_at_all():
    layers, shape = stack("conv_pool")
    model = mf.Sequential(layers, input_shape=shape, backend="numpy", fusions=())
    assert model.plan.describe() == ["(none)"]
    assert model.plan.forward_order == list(range(len(layers)))
    assert "Fusions:\n  (none)" in model.summary(print_fn=None)


def test_the_plan_is_built_from_the_layers_alone():
    layers, shape = stack("conv_pool")
    model = mf.Sequential(layers, input_shape=shape, backend="numpy")
    plan = FusionPlan(model.layers)  # the same layers planned again: the same answer
    assert [vars(p).keys() for p in plan.layers] == [vars(p).keys() for p in model.plan.layers]
    assert plan.forward_order == model.plan.forward_order == [0, 2, 3, 4, 5]
    assert plan.backward_order == [5, 4, 3, 2, 0]
    assert [p.needs_input_grad for p in plan.layers] == [False, True, True, True, True, True]
    np.testing.assert_array_equal(plan.layers[4].input_order, model.plan.layers[4].input_order)


def test_unknown_fusion_is_an_error():
    with pytest.raises(ValueError, match="unknown fusion"):
        mf.Sequential([mf.Dense(10)], input_shape=(4,), fusions=["conv_relu"])


def _attribute_writes(tree):
    """(line, target text) of every assignment to an attribute of something other than ``self``."""
    for node in ast.walk(tree):
        targets = node.targets if isinstance(node, ast.Assign) else (
            [node.target] if isinstance(node, (ast.AugAssign, ast.AnnAssign)) else [])
        for t in targets:
            for sub in ast.walk(t):
                if isinstance(sub, ast.Attribute):
                    base = sub.value
                    while isinstance(base, ast.Attribute):
                        base = base.value
                    if not (isinstance(base, ast.Name) and base.id == "self" and isinstance(sub.value, ast.Name)):
                        yield node.lineno, ast.unparse(t)


def test_layers_write_only_their_own_fields():
    """A layer assigns attributes of ``self`` only (not ``self.other.x``, not another layer's),
    touches no other object's private fields, and never reaches an optimizer or its learning rate
    (a folded SGD step gets the rate as an argument)."""
    found = []
    for path in sorted(LAYERS_DIR.glob("*.py")):
        source = path.read_text()
        found += [f"{path.name}:{line}: {text}" for line, text in _attribute_writes(ast.parse(source))]
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Name) and "optim" in node.id:
                found.append(f"{path.name}:{node.lineno}: uses {node.id}")
            if isinstance(node, ast.Attribute) and node.attr in ("lr", "optimizer"):
                found.append(f"{path.name}:{node.lineno}: reads .{node.attr}")
            private = node.attr.startswith("_") and not node.attr.startswith("__") if isinstance(
                node, ast.Attribute) else False
            if private and not (isinstance(node.value, ast.Name) and node.value.id == "self"):
                found.append(f"{path.name}:{node.lineno}: reaches into {ast.unparse(node)}")
    assert not found, "\n".join(found)
