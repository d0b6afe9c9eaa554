"""Full-data accuracy of the default recipe. Minutes of CPU: run with `pytest -m slow`."""

import pytest

import mnistfast as mf
from mnistfast.cli import DEFAULT_LR, DEFAULT_SCHEDULE


@pytest.mark.slow
def test_default_recipe_reaches_97_5_percent(mnist):
    (X, y), (Xt, yt) = mnist
    model = mf.MLP(backend="cpp", seed=0)
    model.fit(X, y, epochs=5, batch_size=128, lr=DEFAULT_LR, lr_schedule=DEFAULT_SCHEDULE, verbose=0)
    assert model.evaluate(Xt, yt)["accuracy"] >= 0.975
