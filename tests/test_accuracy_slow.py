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
