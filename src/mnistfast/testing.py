"""Comparing a backend against the NumPy reference: the one helper and the one tolerance table.

A comparison passes where ``|got - ref| <= atol + rtol * |ref|`` for every element; NaN or Inf in
``got`` always fails. The reference is the numpy backend run in float64 on the same float32 inputs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Tol:
    rtol: float
    atol: float


# Why these numbers (float32 has eps = 1.2e-7):
# - gemm / linear: a K-term dot product in float32 carries a rounding error that grows like
#   sqrt(K) * eps * |partial sums|. Test inputs lie in [-1, 1] with K <= 2048, so the error stays
#   near 1e-5; 1e-4 leaves room for any summation order (blocked, FMA) without hiding a wrong index,
#   which shows up as an O(1) error.
# - long_sum: the split-K GEMM and chunked column-sum checks at the sizes that split on a real GPU,
#   up to ~1e4 terms in [-1, 1]: partial sums reach ~100, so rounding reaches sqrt(K) * eps * 100
#   ~ 1e-3 near a small result; a wrong chunk boundary drops or repeats whole terms (O(1)).
# - elementwise (ReLU mask, SGD update): one or two roundings per element.
# - reduction (bias gradient): a sum of up to a few thousand terms of size <= 1.
# - softmax_xent: exp/log in float32 on logits up to |z| ~ 1e4 after the max shift.
# - training: float32 backends that sum in different orders drift apart slowly over SGD steps;
#   over the 64 steps of the parity test the losses agree to ~3e-7 relative and the weights to
#   ~1.5e-7 (measured); the bounds leave 30-60x room for a different GEMM summation order.
# - conv: a GEMM over patches of at most 5*5*32 = 800 terms: the gemm argument applies.
# - pool: max pooling copies values and the transposes move them: exact; average pooling and
#   batch norm are reductions over up to a few thousand terms (reduction).
# - batchnorm: dgamma sums dy * xhat (|xhat| up to ~2) over up to a thousand rows; a float32
#   backend summing row by row (NumPy along axis 0) is off by ~5e-5 there: GEMM-like bounds.
# - optimizer: a handful of roundings per element (sqrt and a division in Adam); 1e-5 relative
#   covers them, atol 1e-6 the elements where the update cancels.
# - cnn training: 24 Adam steps (lr 2e-3) of the basic CNN with dropout. Adam moves each weight by
#   about lr per step whatever the gradient's size, so where a gradient is at rounding-noise level
#   the two backends can step in different directions: the weight bound is one step, 2e-3, while
#   a wrong kernel drifts by ~lr every step (~5e-2 over the run). Measured: losses agree to
#   4.1e-5 relative, weights to 3.3e-4 absolute.
# - augment: bilinear sampling at coordinates computed in float32 (|coords| <= ~30, so off by
#   ~4e-6 pixels) of images in [-1, 1] whose values change by at most 2 per pixel: ~1e-5.
# - export: an exported model's probabilities (onnxruntime, torch.export) against predict_proba's.
#   Another runtime sums the convolutions and products in its own order, and a folded batch norm
#   rounds once instead of twice: measured up to 7e-7 on trained presets fed scaled pixels, up to
#   6.4e-6 fed standardized ones (a pixel that is nearly constant in the training set reaches
#   |x| ~ 100 after standardizing, and the logits' rounding grows with it). A wrong layout (a
#   transposed weight, CHW against HWC flattening) is off by O(0.1).
# - bf16: a bf16 path whose operands are not rounded where the reference rounds them (Winograd
#   rounds its transformed tiles, a one-channel direct convolution keeps float32) against the bf16
#   reference. Each term is then off by up to 2 * 2**-9 of itself (bf16 keeps 8 significant bits),
#   in directions that mostly cancel, so the error is a fraction of a percent of the output's
#   scale rather than of each element: compared by assert_close_scaled, in units of the largest
#   |ref|. Measured on the basic CNN's layers (He-scaled weights): up to 0.51 % forward, 0.49 % for
#   the weight gradient; 2**-6 = 1.6 % leaves 3x room, and a wrong index or a missed transform is
#   O(1) there.
# - bf16_training_loss: the same short run in bf16 and fp32 drifts apart as the roundings steer
#   the steps differently. Measured over test_precision's runs (2 epochs, Adam): the MLP's
#   per-step losses within 0.6 %, the basic CNN's within 3.1 %; the band, 10 % (+0.02 near zero),
#   leaves 3x room, while a bf16 path that failed to learn would sit at ln(10) = 2.3.
# - gradcheck: central differences in float64 with h = 1e-6 have truncation error ~h^2 and
#   cancellation error ~eps64 / h ~ 1e-10; atol 1e-8 sits far below every gradient entry checked.
TOLERANCES = {
    "gemm": Tol(rtol=1e-4, atol=1e-4),
    "linear": Tol(rtol=1e-4, atol=1e-4),
    "long_sum": Tol(rtol=1e-4, atol=1e-3),
    "elementwise": Tol(rtol=1e-6, atol=1e-7),
    "reduction": Tol(rtol=1e-5, atol=1e-5),
    "softmax_xent": Tol(rtol=1e-5, atol=1e-6),
    "training_loss": Tol(rtol=1e-5, atol=1e-6),
    "training_weights": Tol(rtol=1e-4, atol=1e-5),
    "conv": Tol(rtol=1e-4, atol=1e-4),
    "pool": Tol(rtol=0.0, atol=0.0),
    "batchnorm": Tol(rtol=1e-4, atol=1e-4),
    "optimizer": Tol(rtol=1e-5, atol=1e-6),
    "cnn_training_loss": Tol(rtol=2e-4, atol=1e-6),
    "cnn_training_weights": Tol(rtol=0.0, atol=2e-3),
    "augment": Tol(rtol=1e-5, atol=3e-5),
    "gradcheck": Tol(rtol=1e-5, atol=1e-8),
    "export": Tol(rtol=0.0, atol=3e-5),
    "bf16": Tol(rtol=0.0, atol=2.0**-6),
    "bf16_training_loss": Tol(rtol=0.1, atol=0.02),
}


def assert_close(got, ref, op: str, name: str = "") -> None:
    """Raise AssertionError with the worst element if ``got`` is not within ``TOLERANCES[op]``."""
    tol = TOLERANCES[op]
    got = np.asarray(got, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    label = f"{op}{' ' + name if name else ''}"
    if got.shape != ref.shape:
        raise AssertionError(f"{label}: shape {got.shape} != reference shape {ref.shape}")
    if not np.isfinite(got).all():
        idx = np.unravel_index(np.argmax(~np.isfinite(got)), got.shape)
        raise AssertionError(f"{label}: non-finite value {got[idx]} at {idx}")
    err = np.abs(got - ref)
    excess = err - (tol.atol + tol.rtol * np.abs(ref))
    if got.size and excess.max() > 0:
        idx = np.unravel_index(np.argmax(excess), got.shape)
        raise AssertionError(
            f"{label}: {np.count_nonzero(excess > 0)} of {got.size} elements out of tolerance "
            f"(rtol={tol.rtol}, atol={tol.atol}); worst at {idx}: got {got[idx]!r}, ref {ref[idx]!r}, "
            f"max abs err {err.max():.3g}"
        )


def assert_close_scaled(got, ref, op: str, name: str = "") -> None:
    """``assert_close`` in units of the largest ``|ref|``: for errors that scale with the whole
    output rather than with each element (``TOLERANCES["bf16"]``)."""
    scale = float(np.abs(np.asarray(ref, dtype=np.float64)).max()) or 1.0
    assert_close(np.asarray(got, dtype=np.float64) / scale, np.asarray(ref, dtype=np.float64) / scale, op, name)
