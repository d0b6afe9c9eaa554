"""The C++ entry points refuse bad arguments with a Python error naming the problem."""

import numpy as np
import pytest

from mnistfast import _core


def f32(*shape):
    return np.zeros(shape, np.float32)


def test_gemm_rejects_wrong_dtype():
    with pytest.raises(TypeError, match="a must have dtype float32, got float64"):
        _core.gemm(np.zeros((2, 3)), f32(3, 4), f32(2, 4))


def test_gemm_never_converts_the_output():
    out = np.zeros((2, 4))  # float64: a converted copy would silently drop the result
    with pytest.raises(TypeError, match="out must have dtype float32"):
        _core.gemm(f32(2, 3), f32(3, 4), out)


def test_gemm_rejects_non_arrays():
    with pytest.raises(TypeError, match="a must be a numpy array, got list"):
        _core.gemm([[1.0]], f32(1, 1), f32(1, 1))


def test_gemm_rejects_non_contiguous():
    with pytest.raises(ValueError, match="b must be C-contiguous"):
        _core.gemm(f32(2, 3), f32(4, 3).T, f32(2, 4))


def test_gemm_rejects_inner_mismatch():
    with pytest.raises(ValueError, match=r"inner dimensions differ: op\(a\) is \(2, 3\) but op\(b\) is \(5, 4\)"):
        _core.gemm(f32(2, 3), f32(5, 4), f32(2, 4))


def test_gemm_rejects_wrong_out_shape():
    with pytest.raises(ValueError, match=r"out has shape \(4, 2\), expected \(2, 4\)"):
        _core.gemm(f32(2, 3), f32(3, 4), f32(4, 2))


def test_gemm_rejects_wrong_rank():
    with pytest.raises(ValueError, match=r"a must be 2-D, got shape \(6,\)"):
        _core.gemm(f32(6), f32(3, 4), f32(2, 4))


def test_gemm_rejects_read_only_out():
    out = f32(2, 4)
    out.flags.writeable = False
    with pytest.raises(ValueError, match="out is read-only"):
        _core.gemm(f32(2, 3), f32(3, 4), out)


def test_gemm_rejects_aliased_out():
    a = f32(4, 4)
    with pytest.raises(ValueError, match="out must not share memory with a"):
        _core.gemm(a, f32(4, 4), a)


def test_linear_forward_checks_bias():
    with pytest.raises(ValueError, match=r"b has shape \(3,\), expected \(4,\)"):
        _core.linear_forward(f32(2, 3), f32(3, 4), f32(3), f32(2, 4))


def test_linear_backward_input_checks_mask():
    with pytest.raises(ValueError, match=r"y has shape \(2, 4\), expected \(2, 3\)"):
        _core.linear_backward_input(f32(2, 4), f32(3, 4), f32(2, 4), f32(2, 3))


def test_relu_backward_rejects_partial_overlap():
    buf = f32(3, 4)
    with pytest.raises(ValueError, match="out must not share memory with dy"):
        _core.relu_backward(buf[:2], f32(2, 4), buf[1:])


def test_softmax_xent_rejects_label_out_of_range():
    with pytest.raises(ValueError, match=r"labels\[1\] = 10 is out of range for 10 classes"):
        _core.softmax_xent(f32(2, 10), np.array([3, 10]), None)


def test_softmax_xent_rejects_int32_labels():
    with pytest.raises(TypeError, match="labels must have dtype int64, got int32"):
        _core.softmax_xent(f32(2, 10), np.array([1, 2], np.int32), None)


def test_softmax_xent_rejects_empty():
    with pytest.raises(ValueError, match="logits is empty"):
        _core.softmax_xent(f32(0, 10), np.zeros(0, np.int64), None)


def test_sgd_update_checks_shapes():
    with pytest.raises(ValueError, match=r"grad has shape \(3, 2\), param has shape \(2, 3\)"):
        _core.sgd_update(f32(2, 3), f32(3, 2), 0.1)


def test_set_num_threads_rejects_zero():
    with pytest.raises(ValueError, match="n must be >= 1"):
        _core.set_num_threads(0)
