"""Which arithmetic a training runs in: ``"fp32"``, ``"bf16"`` or ``"auto"``.

In bf16 the operands of every GEMM (dense layers, im2col and Winograd products) are rounded to
bfloat16 and their products summed in float32. Weights, gradients, optimizer state, element-wise
ops, softmax and the loss stay float32, and so do the direct convolutions. bf16 keeps float32's
exponent range, so no loss scaling is needed.

A backend says what it can do (``Backend.bf16_support``):

- ``"hardware"``: the CPU has bf16 dot-product instructions (cpp on AVX512-BF16);
- ``"emulated"``: rounding in software, exact but slow (the numpy reference);
- ``None``: no bf16 at all.

``resolve`` turns a request into the precision that runs: ``"auto"`` picks bf16 only where the
hardware has it; ``"bf16"`` runs on hardware or emulation and falls back to fp32 elsewhere, with a
note saying why.
"""

from __future__ import annotations

from contextlib import contextmanager

PRECISIONS = ("fp32", "bf16", "auto")


def check_precision(precision: str) -> str:
    """Return ``precision`` if it is one of ``PRECISIONS``; raise ValueError otherwise."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}; got {precision!r}")
    return precision


def resolve(precision: str, backend) -> tuple[str, str | None]:
    """The precision ``backend`` runs for a request, and a one-line note when it differs.

    Args:
        precision: ``"fp32"``, ``"bf16"`` or ``"auto"``.
        backend: a :class:`mnistfast.backends.Backend`.

    Returns:
        ``(effective, note)``: ``effective`` is ``"fp32"`` or ``"bf16"``; ``note`` is None unless
        bf16 was asked for by name and cannot run.
    """
    support = backend.bf16_support
    if check_precision(precision) == "fp32":
        return "fp32", None
    if precision == "auto":
        return ("bf16" if support == "hardware" else "fp32"), None
    if support is None:
        return "fp32", f"bf16 is not available on {backend.bf16_missing()}; training in fp32"
    return "bf16", None


@contextmanager
def using(backend, precision: str | None, note=print):
    """Run the ``with`` body in ``precision`` (resolved for ``backend``), then restore the
    backend's own; ``None`` changes nothing. A fallback's note goes to ``note``. Yields the
    precision that runs."""
    before = backend.precision
    if precision is None:
        yield before
        return
    effective, why = resolve(precision, backend)
    if why:
        note(why)
    backend.set_precision(effective)
    try:
        yield effective
    finally:
        backend.set_precision(before)


def describe(backend, precision: str) -> str:
    """``precision`` as the training log names it: ``"fp32"``, or bf16 with the kernel that runs
    it (``"bf16 (avx512bf16)"``; ``"bf16 (emulated)"`` on the numpy reference)."""
    if precision == "fp32":
        return "fp32"
    return f"bf16 ({getattr(backend, 'bf16_kernel', None) or backend.bf16_support})"
