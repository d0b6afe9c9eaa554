"""How the cuda backend launches its kernels: split-K GEMMs and chunked column sums give the same
answers as the reference (bitwise the same from run to run), and a training step at full batch
size keeps a GPU busy.

The step checks record the launches without running them, sized for an H100 (``launch.GPU``),
so that they hold in CI without a GPU: every launch of an MLP or basic-CNN step at batch 128
fills the GPU (``GPU.fill_blocks`` blocks, two per SM) or is small enough to be bound by launch
latency, and the step launches no more kernels than it does today.
"""

import numpy as np
import pytest
from conftest import needs_cuda

import mnistfast as mf
from mnistfast.testing import assert_close

pytestmark = needs_cuda

# Kernel launches of one training step at batch 128 (gather, forward, loss, backward, update):
# ceilings at today's counts, so that a change adding launches shows up here. The target
# is 12 for the basic CNN.
MAX_LAUNCHES = {"mlp": 17, "cnn": 41}


@pytest.fixture(scope="module")
def be():
    return mf.get_backend("cuda")


@pytest.fixture(scope="module")
def launch(be):
    from mnistfast.backends.cuda import launch

    return launch


def names(launches):
    return [r.kernel for r in launches]


def narrow_and_deep(launch):
    """(m, n, k) of a product whose few output tiles need a split along K on this target."""
    return (9, 20, 300) if launch.COMPILED is launch.SIMULATED else (9, 32, 8192)


def uniform(rng, *shape):
    return rng.uniform(-1.0, 1.0, shape).astype(np.float32)


@pytest.mark.parametrize("trans_a,trans_b", [(False, False), (True, False), (False, True), (True, True)])
def test_split_k_gemm_matches_the_reference(be, launch, trans_a, trans_b):
    m, n, k = narrow_and_deep(launch)
    rng = np.random.default_rng(1)
    a = uniform(rng, *((k, m) if trans_a else (m, k)))
    b = uniform(rng, *((n, k) if trans_b else (k, n)))
    c = uniform(rng, m, n)
    out = be.to_device(c)
    with be.record_launches() as launches:
        be.gemm(be.to_device(a), be.to_device(b), out, trans_a, trans_b, 0.5, 2.0)
    assert any(k.startswith("sgemm_split_k_") for k in names(launches)), names(launches)
    want = 0.5 * (a.T if trans_a else a).astype(np.float64) @ (b.T if trans_b else b) + 2.0 * c
    assert_close(be.to_host(out), want, "long_sum")


def test_split_k_is_the_same_every_run(be, launch):
    m, n, k = narrow_and_deep(launch)
    rng = np.random.default_rng(2)
    x, dy = be.to_device(uniform(rng, k, m)), be.to_device(uniform(rng, k, n))
    runs = []
    for _ in range(2):
        dw, db = be.zeros((m, n)), be.zeros((n,))
        be.linear_weight_grad(x, dy, dw, db)
        runs.append((be.to_host(dw), be.to_host(db)))
    assert np.array_equal(runs[0][0], runs[1][0]) and np.array_equal(runs[0][1], runs[1][1])


def test_the_epilogue_follows_the_split(be, launch):
    """Bias and ReLU, and the ReLU mask, are applied once, after the partial sums are added."""
    _, n, k = narrow_and_deep(launch)
    rng = np.random.default_rng(3)
    x = uniform(rng, 9, k)
    w = uniform(rng, k, n)
    bias = uniform(rng, n)
    out = be.empty((9, n))
    with be.record_launches() as launches:
        be.linear_forward(be.to_device(x), be.to_device(w), be.to_device(bias), out, relu=True)
    assert "sgemm_split_k_finish" in names(launches)
    want = np.maximum(x.astype(np.float64) @ w + bias, 0.0)
    assert_close(be.to_host(out), want, "long_sum")

    dy = uniform(rng, 9, k)
    y = np.maximum(uniform(rng, 9, n), 0.0)
    dx = be.empty((9, n))
    be.linear_backward_input(be.to_device(dy), be.to_device(np.ascontiguousarray(w.T)), be.to_device(y), dx)
    assert_close(be.to_host(dx), (dy.astype(np.float64) @ w) * (y > 0), "long_sum")


def test_column_sums_in_row_chunks(be, launch):
    rows = 300 if launch.COMPILED is launch.SIMULATED else 100000
    dy = uniform(np.random.default_rng(4), rows, 3)
    out = be.empty((3,))
    with be.record_launches() as launches:
        be.bias_grad(be.to_device(dy), out)
    assert names(launches) == ["column_partial_sums", "column_sums_finish"], names(launches)
    assert_close(be.to_host(out), dy.astype(np.float64).sum(axis=0), "long_sum")


def test_a_dry_recording_runs_nothing(be, launch):
    x = be.to_device(np.ones((4, 8), np.float32))
    out = be.to_device(np.full((4, 8), 7.0, np.float32))
    with be.record_launches(execute=False) as launches:
        be.activation_forward(x, out, "relu")
    assert names(launches) == ["activation_forward"]
    assert np.all(be.to_host(out) == 7.0)
    with pytest.raises(ValueError, match="compiled for one target"):
        other = launch.GPU if launch.COMPILED is launch.SIMULATED else launch.SIMULATED
        with be.record_launches(as_target=other):
            pass


def test_the_gemm_plan_depends_only_on_the_shape(launch):
    """conv1's weight gradient at batch 128 (9 x 32 over 86,528 rows): one 64 x 64 tile, split
    into chunks that give every SM two blocks, the same on any GPU (the plan reads no device)."""
    from mnistfast.backends.cuda import gemm

    with launch.record_launches(execute=False, as_target=launch.GPU):
        tile, splits, chunk = gemm.gemm_plan(9, 32, 86528)
        assert gemm.gemm_plan(9, 32, 86528) == (tile, splits, chunk)
        assert splits >= launch.GPU.fill_blocks and chunk % tile[2] == 0 and splits * chunk >= 86528
        assert (splits - 1) * chunk < 86528  # no empty chunk
        assert gemm.gemm_plan(2048, 2048, 2048)[1] == 1  # enough tiles: no split
        assert gemm.gemm_plan(128, 64, 128)[1] == 1  # latency-bound: no second launch


@pytest.mark.parametrize("model", ["mlp", "cnn"])
def test_a_training_step_at_full_batch_fills_the_gpu(be, launch, model):
    from mnistfast.bench.cuda import record_step

    shape = (784,) if model == "mlp" else (1, 28, 28)
    rng = np.random.default_rng(0)
    X, y = rng.random((256, *shape), dtype=np.float32), rng.integers(0, 10, 256)
    net = mf.MLP(backend=be) if model == "mlp" else mf.CNN("basic", backend=be)
    opt = mf.optim.SGD(lr=0.1) if model == "mlp" else mf.optim.Adam(lr=1e-3)
    launches = record_step(net, opt, X, y, 128, execute=False, as_target=launch.GPU)
    gpu = launch.GPU
    narrow = [r for r in launches if r.blocks < gpu.fill_blocks and not gpu.latency_bound(r.array_bytes, r.macs)]
    assert not narrow, narrow
    assert len(launches) <= MAX_LAUNCHES[model], names(launches)
    assert names(launches)[:2] == ["take_rows", "take_labels"]  # the batch gather is counted
