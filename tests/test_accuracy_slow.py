"""Full-data accuracy of the presets' recipes. Minutes of CPU: run with `pytest -m slow`."""

import pytest

import mnistfast as mf


@pytest.mark.slow
def test_mlp_recipe_reaches_97_5_percent(mnist):
    (X, y), (Xt, yt) = mnist
    model = mf.MLP(backend="cpp", seed=0)
    model.fit(X, y, verbose=0, **model.recipe.fit_kwargs())
    assert model.evaluate(Xt, yt)["accuracy"] >= 0.975


@pytest.mark.slow
def test_basic_cnn_recipe_reaches_99_percent(mnist):
    (X, y), (Xt, yt) = mnist
    model = mf.CNN("basic", backend="cpp", seed=0)
    model.fit(X, y, verbose=0, **model.recipe.fit_kwargs())
    assert model.evaluate(Xt, yt)["accuracy"] >= 0.99


@pytest.mark.slow
def test_fast_cnn_recipe_reaches_99_percent_on_average(mnist):
    """One epoch per seed, five seeds: the mean test accuracy is the target."""
    (X, y), (Xt, yt) = mnist
    accs = []
    for seed in range(5):
        model = mf.CNN("fast", backend="cpp", seed=seed)
        model.fit(X, y, verbose=0, **model.recipe.fit_kwargs())
        accs.append(model.evaluate(Xt, yt)["accuracy"])
    assert sum(accs) / len(accs) >= 0.99, accs


@pytest.mark.slow
def test_improved_cnn_recipe_reaches_99_5_percent(mnist):
    """Model selection sees the validation split only; the test set is evaluated once."""
    (X, y), (Xt, yt) = mnist
    (Xtr, ytr), val = mf.train_val_split(X, y, 0.1, seed=0)
    model = mf.CNN("improved", backend="cpp", seed=0)
    model.fit(Xtr, ytr, validation_data=val, verbose=0, **model.recipe.fit_kwargs())
    assert model.evaluate(Xt, yt)["accuracy"] >= 0.995
