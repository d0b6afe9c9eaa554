"""Data augmentation: the affine-warp kernel on every backend against the float64 reference,
identity and a known rotation exactly, and RandomAffine's seeded parameters."""

import numpy as np
import pytest
from conftest import uniform

import mnistfast as mf
from mnistfast.augment import RandomAffine
from mnistfast.testing import assert_close

IDENTITY = [1, 0, 0, 1, 0, 0]


def random_params(rng, n):
    theta, scale = rng.uniform(-0.6, 0.6, n), rng.uniform(0.8, 1.2, n)
    a = np.stack([np.cos(theta) / scale, np.sin(theta) / scale, -np.sin(theta) / scale, np.cos(theta) / scale], 1)
    return np.column_stack([a, rng.uniform(-4, 4, (n, 2))]).astype(np.float32)


@pytest.mark.parametrize("shape", [(1, 5, 5, 1), (3, 28, 28, 1), (2, 9, 13, 3)])
def test_affine_warp_matches_reference(backend, ref, rng, shape):
    x, params = uniform(rng, *shape), random_params(rng, shape[0])
    got = backend.affine_warp(x, params, np.empty_like(x))
    want = ref.affine_warp(x.astype(np.float64), params.astype(np.float64), np.empty(shape))
    assert_close(got, want, "augment", str(shape))


def test_identity_and_a_quarter_turn_are_exact(backend, rng):
    x = uniform(rng, 2, 7, 7, 2)
    same = backend.affine_warp(x, np.tile(np.float32(IDENTITY), (2, 1)), np.empty_like(x))
    np.testing.assert_array_equal(same, x)
    # Output (x, y) reads input (W-1-y, x): np.rot90 over the image axes.
    turned = backend.affine_warp(x, np.tile(np.float32([0, -1, 1, 0, 0, 0]), (2, 1)), np.empty_like(x))
    np.testing.assert_array_equal(turned, np.rot90(x, 1, axes=(1, 2)))
    shifted = backend.affine_warp(x, np.tile(np.float32([1, 0, 0, 1, 2, 0]), (2, 1)), np.empty_like(x))
    np.testing.assert_array_equal(shifted[:, :, :5], x[:, :, 2:])  # reads 2 pixels to the right
    np.testing.assert_array_equal(shifted[:, :, 5:], 0)  # past the edge: zeros


def test_affine_warp_rejects_bad_params(backend, rng):
    x = uniform(rng, 1, 4, 4, 1)
    with pytest.raises(ValueError):
        backend.affine_warp(x, np.float32([[1, 0, 0, 1, np.nan, 0]]), np.empty_like(x))
    with pytest.raises(ValueError):
        backend.affine_warp(x, np.zeros((2, 6), np.float32), np.empty_like(x))


def test_random_affine_is_seeded():
    aug = RandomAffine(rotation=0.06, translation=0.06, zoom=0.1)
    a, b = aug.params(8, 28, 28, seed=3, step=5), aug.params(8, 28, 28, seed=3, step=5)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, aug.params(8, 28, 28, seed=3, step=6))
    angles = np.arctan2(a[:, 1], a[:, 0])
    assert np.abs(angles).max() <= 0.06 * 2 * np.pi + 1e-6 and np.abs(angles).max() > 0.01
    np.testing.assert_allclose(RandomAffine().params(4, 28, 28, 0, 0), np.tile(IDENTITY, (4, 1)), atol=0)
    with pytest.raises(ValueError, match="rotation"):
        RandomAffine(rotation=2)


def test_fit_with_augmentation_is_reproducible(mnist_small):
    (X, y), _ = mnist_small
    aug = RandomAffine(rotation=0.06, translation=0.06)
    runs = []
    for _ in range(2):
        m = mf.Sequential([mf.Conv2D(4, 3, activation="relu"), mf.MaxPool2D(2), mf.Flatten(), mf.Dense(10)],
                          input_shape=(1, 28, 28), seed=2)
        h = m.fit(X[:256], y[:256], epochs=1, batch_size=64, optimizer=mf.optim.Adam(), augment=aug, verbose=0)
        runs.append((h.history["loss"][0], m.get_params()))
    assert runs[0][0] == runs[1][0]
    plain = mf.Sequential([mf.Conv2D(4, 3, activation="relu"), mf.MaxPool2D(2), mf.Flatten(), mf.Dense(10)],
                          input_shape=(1, 28, 28), seed=2)
    h = plain.fit(X[:256], y[:256], epochs=1, batch_size=64, optimizer=mf.optim.Adam(), verbose=0)
    assert h.history["loss"][0] != runs[0][0]  # the augmentation changed what it trained on
    with pytest.raises(ValueError, match="image model"):
        mf.MLP().fit(X[:10], y[:10], augment=aug, verbose=0)
