"""Schedules (values at given steps), callbacks (scripted metric sequences, and inside fit),
validation_split, and ensembles (averaging against a hand computation, save/load)."""

import math

import numpy as np
import pytest

import mnistfast as mf
from mnistfast.schedules import Constant, Cosine, Exponential, OneCycle, StepDecay, make_schedule


# -- schedules -----------------------------------------------------------------------------------
def test_schedule_values():
    assert [StepDecay((30, 50, 65), 0.1).lr(t, 80, 1.0) for t in (0, 29, 30, 49, 50, 65, 79)] == pytest.approx(
        [1, 1, 0.1, 0.1, 0.01, 0.001, 0.001])
    assert Exponential(0.5).lr(3, 10, 0.8) == pytest.approx(0.1)
    assert Constant().lr(7, 10, 0.3) == 0.3
    assert [Cosine().lr(t, 4, 2.0) for t in range(4)] == pytest.approx([2.0, 1 + math.sqrt(0.5), 1.0, 1 - math.sqrt(0.5)])
    one = OneCycle(pct_start=0.25, div_factor=25, final_div_factor=1e4)
    lrs = [one.lr(t, 100, 1.0) for t in range(100)]
    assert lrs[0] == pytest.approx(1 / 25) and lrs[25] == pytest.approx(1.0) and max(lrs) == pytest.approx(1.0)
    assert lrs[-1] == pytest.approx(1 / 25 / 1e4) and all(a <= b for a, b in zip(lrs[:25], lrs[1:26]))
    assert all(a >= b for a, b in zip(lrs[25:], lrs[26:]))


def test_per_step_schedules_count_steps_across_epochs():
    at = make_schedule("onecycle", 0.1, epochs=2, steps_per_epoch=10)
    assert at.per == "step"
    assert at(1, 0) == pytest.approx(OneCycle().lr(10, 20, 0.1))
    assert make_schedule(lambda e, lr: lr / (e + 1), 0.6, 3)(2) == pytest.approx(0.2)
    with pytest.raises(ValueError, match="positive and finite"):
        make_schedule(lambda e, lr: -1.0, 0.1, 3)(0)


def test_fit_applies_a_per_step_schedule(mnist_small):
    (X, y), _ = mnist_small

    class Rates(mf.Callback):
        def __init__(self):
            self.lrs, self.steps = [], []

        def on_batch_end(self, step, logs):
            self.steps.append(step)
            self.lrs.append(logs["lr"])

    rates = Rates()
    opt = mf.optim.Adam(lr=1e-2)
    mf.MLP([784, 16, 10]).fit(X[:640], y[:640], epochs=2, batch_size=64, optimizer=opt,
                              lr_schedule="onecycle", verbose=0, callbacks=[rates])
    assert rates.steps == list(range(20))  # the step count runs across epochs
    want = [OneCycle().lr(t, 20, 1e-2) for t in range(20)]
    assert rates.lrs == pytest.approx(want)


# -- callbacks, scripted -------------------------------------------------------------------------
class FakeModel:
    def __init__(self):
        self.stop_training = False
        self.params = [np.zeros(2)]
        self.lr_scale, self.lr_floor = 1.0, 0.0

    def get_params(self):
        return [p.copy() for p in self.params]

    def set_params(self, params):
        self.params = [p.copy() for p in params]


def script(callback, values, monitor="val_loss", lr=1.0):
    """Feed a metric sequence epoch by epoch; return the epoch it stopped at (or None)."""
    model, opt = FakeModel(), mf.optim.SGD(lr=lr)
    callback.set_context(model, opt)
    for epoch, v in enumerate(values, start=1):
        model.params = [np.full(2, float(epoch))]  # "weights" that name their epoch
        opt.lr = lr * model.lr_scale
        callback.on_epoch_end(epoch, {monitor: v})
        if model.stop_training:
            break
    callback.on_train_end({})
    return model, (epoch if model.stop_training else None)


def test_early_stopping_stops_at_the_right_epoch_and_restores_the_best():
    # seed 000's settings: val_loss, min_delta 0.001, patience 5
    es = mf.EarlyStopping(monitor="val_loss", min_delta=0.001, patience=5, restore_best_weights=True)
    values = [1.0, 0.8, 0.7, 0.6995, 0.71, 0.70, 0.6999, 0.72, 0.5]
    model, stopped = script(es, values)
    assert stopped == 8 and es.best_epoch == 3  # 0.6995 is not 0.001 better than 0.7
    assert model.params[0][0] == 3.0  # the weights of epoch 3 are back
    _, stopped = script(mf.EarlyStopping(monitor="val_accuracy", patience=2), [0.9, 0.95, 0.94, 0.96], "val_accuracy")
    assert stopped is None
    with pytest.raises(KeyError, match="'val_loss' is not logged"):
        script(mf.EarlyStopping(), [0.5], monitor="loss")


def test_reduce_lr_on_plateau_reduces_at_the_right_epochs():
    # seed 000's settings: val_loss, factor 0.5, patience 3, min_lr 1e-6
    cb = mf.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=3, min_lr=1e-6, min_delta=0.0)
    values = [1.0, 0.9, 0.9, 0.9, 0.9, 0.9, 0.8, 0.8, 0.8, 0.8, 0.8]
    model, _ = script(cb, values, lr=1e-3)
    assert [e for e, _ in cb.reductions] == [5, 10]
    assert [lr for _, lr in cb.reductions] == pytest.approx([5e-4, 2.5e-4])
    assert model.lr_scale == 0.25 and model.lr_floor == 1e-6


def test_model_checkpoint_saves_only_improvements(tmp_path, mnist_small):
    (X, y), _ = mnist_small
    ck = mf.ModelCheckpoint(tmp_path / "best-{epoch}.npz", monitor="val_accuracy", save_best_only=True)
    model = mf.MLP([784, 16, 10])
    ck.set_context(model, None)
    for epoch, acc in enumerate([0.5, 0.6, 0.55, 0.7], start=1):
        ck.on_epoch_end(epoch, {"val_accuracy": acc})
    assert [p.rsplit("/", 1)[-1] for p in ck.saved] == ["best-1.npz", "best-2.npz", "best-4.npz"]
    assert mf.load_model(ck.saved[-1]).count_params() == model.count_params()


def test_callbacks_in_fit_stop_training_and_use_the_validation_split(mnist_small):
    (X, y), _ = mnist_small
    es = mf.EarlyStopping(monitor="val_loss", min_delta=10.0, patience=1, restore_best_weights=True)
    model = mf.MLP([784, 32, 10], seed=1)
    history = model.fit(X[:2000], y[:2000], epochs=10, validation_split=0.2, verbose=0, callbacks=[es])
    assert len(history.epoch) == 2 and es.stopped_epoch == 2 and es.best_epoch == 1
    assert "val_loss" in history.history
    plateau = mf.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=0, min_delta=10.0)
    h = mf.MLP([784, 16, 10]).fit(X[:500], y[:500], epochs=3, lr=0.1, verbose=0, callbacks=[plateau])
    assert h.history["lr"] == pytest.approx([0.1, 0.1, 0.05])  # epoch 1 sets the best; epoch 2 misses it
    with pytest.raises(ValueError, match="not both"):
        model.fit(X[:100], y[:100], validation_split=0.1, validation_data=(X[:10], y[:10]), verbose=0)


# -- ensembles ---------------------------------------------------------------------------------
def test_ensemble_averages_probabilities(mnist_small, tmp_path):
    (X, y), (Xt, yt) = mnist_small
    members = []
    for seed in range(3):
        m = mf.MLP([784, 16, 10], seed=seed)
        m.fit(X[:1000], y[:1000], epochs=1, lr=0.2, verbose=0)
        members.append(m)
    ens = mf.Ensemble(members)
    probs = [m.predict_proba(Xt[:50]).astype(np.float64) for m in members]
    by_hand = (probs[0] + probs[1] + probs[2]) / 3
    np.testing.assert_allclose(ens.predict_proba(Xt[:50]), by_hand, rtol=1e-6)
    np.testing.assert_array_equal(ens.predict(Xt[:50]), by_hand.argmax(axis=1))
    score = ens.evaluate(Xt[:50], yt[:50])
    assert score["loss"] == pytest.approx(-np.log(by_hand[np.arange(50), yt[:50]]).mean(), rel=1e-5)
    ens.save(tmp_path / "ens.npz")
    back = mf.load_model(tmp_path / "ens.npz")
    assert isinstance(back, mf.Ensemble) and len(back.models) == 3
    np.testing.assert_array_equal(back.predict_proba(Xt[:50]), ens.predict_proba(Xt[:50]))
    with pytest.raises(ValueError, match="member 1"):
        mf.Ensemble([members[0], mf.MLP([784, 8, 5])])


def test_bench_fixes_the_allocator_threshold_where_glibc_runs():
    import platform

    from mnistfast.bench.cpu import steady_allocator

    glibc = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
    assert steady_allocator() is glibc
