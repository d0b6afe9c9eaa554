"""The C++ entry points refuse bad arguments with a Python error naming the problem."""

import numpy as np
import pytest

from mnistfast import _core

K = _core.Kernels()  # every kernel is a method of the settings object


def f32(*shape):
    return np.zeros(shape, np.float32)


def test_gemm_rejects_wrong_dtype():
    with pytest.raises(TypeError, match="a must have dtype float32, got float64"):
        K.gemm(np.zeros((2, 3)), f32(3, 4), f32(2, 4))


def test_gemm_never_converts_the_output():
    out = np.zeros((2, 4))  # float64: a converted copy would silently drop the result
    with pytest.raises(TypeError, match="out must have dtype float32"):
        K.gemm(f32(2, 3), f32(3, 4), out)


def test_gemm_rejects_non_arrays():
    with pytest.raises(TypeError, match="a must be a numpy array, got list"):
        K.gemm([[1.0]], f32(1, 1), f32(1, 1))


def test_gemm_rejects_non_contiguous():
    with pytest.raises(ValueError, match="b must be C-contiguous"):
        K.gemm(f32(2, 3), f32(4, 3).T, f32(2, 4))


def test_gemm_rejects_inner_mismatch():
    with pytest.raises(ValueError, match=r"inner dimensions differ: op\(a\) is \(2, 3\) but op\(b\) is \(5, 4\)"):
        K.gemm(f32(2, 3), f32(5, 4), f32(2, 4))


def test_gemm_rejects_wrong_out_shape():
    with pytest.raises(ValueError, match=r"out has shape \(4, 2\), expected \(2, 4\)"):
        K.gemm(f32(2, 3), f32(3, 4), f32(4, 2))


def test_gemm_rejects_wrong_rank():
    with pytest.raises(ValueError, match=r"a must be 2-D, got shape \(6,\)"):
        K.gemm(f32(6), f32(3, 4), f32(2, 4))


def test_gemm_rejects_read_only_out():
    out = f32(2, 4)
    out.flags.writeable = False
    with pytest.raises(ValueError, match="out is read-only"):
        K.gemm(f32(2, 3), f32(3, 4), out)


def test_gemm_rejects_aliased_out():
    a = f32(4, 4)
    with pytest.raises(ValueError, match="out must not share memory with a"):
        K.gemm(a, f32(4, 4), a)


def test_linear_forward_checks_bias():
    with pytest.raises(ValueError, match=r"b has shape \(3,\), expected \(4,\)"):
        K.linear_forward(f32(2, 3), f32(3, 4), f32(3), f32(2, 4))


def test_linear_backward_input_checks_mask():
    with pytest.raises(ValueError, match=r"y has shape \(2, 4\), expected \(2, 3\)"):
        K.linear_backward_input(f32(2, 4), f32(3, 4), f32(2, 4), f32(2, 3))


def test_linear_weight_grad_checks_shapes_and_aliases():
    with pytest.raises(ValueError, match=r"dy has shape \(3, 4\), expected \(2, 4\)"):
        K.linear_weight_grad(f32(2, 3), f32(3, 4), f32(3, 4), f32(4))
    with pytest.raises(ValueError, match=r"db has shape \(3,\), expected \(4,\)"):
        K.linear_weight_grad(f32(2, 3), f32(2, 4), f32(3, 4), f32(3))
    dy = f32(2, 4)
    with pytest.raises(ValueError, match="db must not share memory with dy"):
        K.linear_weight_grad(f32(2, 3), dy, f32(3, 4), dy[0])
    db = f32(4)
    db.flags.writeable = False
    with pytest.raises(ValueError, match="db is read-only"):
        K.linear_weight_grad(f32(2, 3), dy, f32(3, 4), db)


def test_relu_backward_rejects_partial_overlap():
    buf = f32(3, 4)
    with pytest.raises(ValueError, match="out must not share memory with dy"):
        K.relu_backward(buf[:2], f32(2, 4), buf[1:])


def test_softmax_xent_rejects_label_out_of_range():
    with pytest.raises(ValueError, match=r"labels\[1\] = 10 is out of range for 10 classes"):
        K.softmax_xent(f32(2, 10), np.array([3, 10]), None)


def test_softmax_xent_rejects_int32_labels():
    with pytest.raises(TypeError, match="labels must have dtype int64, got int32"):
        K.softmax_xent(f32(2, 10), np.array([1, 2], np.int32), None)


def test_softmax_xent_rejects_empty():
    with pytest.raises(ValueError, match="logits is empty"):
        K.softmax_xent(f32(0, 10), np.zeros(0, np.int64), None)


def test_kernels_settings_are_checked():
    with pytest.raises(ValueError, match="threads must be >= 1"):
        _core.Kernels(threads=0)
    with pytest.raises(ValueError, match="gemm kernel 'sse9' is not available"):
        _core.Kernels(gemm_kernel="sse9")
    k = _core.Kernels(threads=1, gemm_kernel="generic")
    assert (k.threads, k.gemm_kernel) == (1, "generic")


# -- the layer kernels: one bad argument of each kind per entry point ------------------------------
CONV = (3, 3, 1, 1, 0, 0)  # kh, kw, sh, sw, ph, pw


def test_conv2d_forward_rejects_bad_arguments():
    x, w, b, out = f32(2, 5, 5, 3), f32(27, 4), f32(4), f32(2, 3, 3, 4)
    K.conv2d_forward(x, w, b, out, *CONV)  # the good call
    with pytest.raises(TypeError, match="x must have dtype float32, got float64"):
        K.conv2d_forward(np.zeros((2, 5, 5, 3)), w, b, out, *CONV)
    with pytest.raises(ValueError, match=r"w has shape \(28, 4\), expected \(27, 4\)"):
        K.conv2d_forward(x, f32(28, 4), b, out, *CONV)
    with pytest.raises(ValueError, match="x must be C-contiguous"):
        K.conv2d_forward(f32(2, 5, 3, 5).transpose(0, 1, 3, 2), w, b, out, *CONV)
    with pytest.raises(ValueError, match="out is read-only"):
        ro = f32(2, 3, 3, 4)
        ro.flags.writeable = False
        K.conv2d_forward(x, w, b, ro, *CONV)
    with pytest.raises(ValueError, match="out must not share memory with x"):
        buf = f32(2 * 5 * 5 * 3)
        K.conv2d_forward(buf.reshape(2, 5, 5, 3), w, b, buf[: 2 * 9 * 4].reshape(2, 3, 3, 4), *CONV)
    with pytest.raises(ValueError, match="windows past the padded input"):
        K.conv2d_forward(x, w, b, f32(2, 6, 6, 4), *CONV)
    with pytest.raises(ValueError, match="padding .* must be >= 0 and smaller than the kernel"):
        K.conv2d_forward(x, w, b, out, 3, 3, 1, 1, 3, 0)
    with pytest.raises(ValueError, match="stride height must be >= 1"):
        K.conv2d_forward(x, w, b, out, 3, 3, 0, 1, 0, 0)


def test_conv2d_backward_rejects_bad_arguments():
    dy, x, w, dw, db, dx = f32(2, 3, 3, 4), f32(2, 5, 5, 3), f32(27, 4), f32(27, 4), f32(4), f32(2, 5, 5, 3)
    K.conv2d_backward(dy, x, w, dw, db, dx, *CONV)
    K.conv2d_backward(dy, x, w, dw, None, None, *CONV)  # no bias, no input gradient
    with pytest.raises(ValueError, match=r"dx has shape \(2, 5, 5, 2\), expected \(2, 5, 5, 3\)"):
        K.conv2d_backward(dy, x, w, dw, db, f32(2, 5, 5, 2), *CONV)
    with pytest.raises(ValueError, match=r"dy has shape \(3, 3, 3, 4\), expected \(2, 3, 3, 4\)"):
        K.conv2d_backward(f32(3, 3, 3, 4), x, w, dw, db, dx, *CONV)
    with pytest.raises(ValueError, match="dw must not share memory with w"):
        K.conv2d_backward(dy, x, w, w, db, dx, *CONV)


def test_maxpool_rejects_bad_arguments():
    x, out, arg = f32(1, 4, 4, 2), f32(1, 2, 2, 2), np.zeros((1, 2, 2, 2), np.int32)
    K.maxpool_forward(x, out, arg, 2)
    with pytest.raises(TypeError, match="argmax must have dtype int32"):
        K.maxpool_forward(x, out, np.zeros((1, 2, 2, 2), np.int64), 2)
    with pytest.raises(ValueError, match="smaller than the pool"):
        K.maxpool_forward(f32(1, 1, 4, 2), f32(1, 0, 2, 2), np.zeros((1, 0, 2, 2), np.int32), 2)
    bad = arg.copy()
    bad[0, 1, 1, 1] = 32  # one past the image: backward would write out of bounds
    with pytest.raises(ValueError, match="argmax entry 7 = 32 is outside an image of 32 elements"):
        K.maxpool_backward(out, bad, out, f32(1, 4, 4, 2), 2, False)
    with pytest.raises(ValueError, match="argmax entry 0 = -1"):
        K.maxpool_backward(out, np.full((1, 2, 2, 2), -1, np.int32), out, f32(1, 4, 4, 2), 2, False)


def test_batchnorm_rejects_bad_arguments():
    x, c = f32(8, 3), f32(3)
    with pytest.raises(ValueError, match=r"gamma has shape \(4,\), expected \(3,\)"):
        K.batchnorm_forward_train(x, f32(4), c, f32(8, 3), f32(3), f32(3), f32(3), f32(3), 1e-5, 0.1)
    with pytest.raises(ValueError, match="running_mean must not share memory with running_var"):
        rm = f32(3)
        K.batchnorm_forward_train(x, c, c, f32(8, 3), f32(3), f32(3), rm, rm, 1e-5, 0.1)
    with pytest.raises(ValueError, match="momentum must be in"):
        K.batchnorm_forward_train(x, c, c, f32(8, 3), f32(3), f32(3), f32(3), f32(3), 1e-5, 2.0)
    with pytest.raises(ValueError, match="x is empty"):
        K.batchnorm_forward_infer(f32(0, 3), c, c, c, c, f32(0, 3), 1e-5)


def test_elementwise_reject_bad_arguments():
    with pytest.raises(ValueError, match="unknown activation 'gelu'"):
        K.activation_forward(f32(3), f32(3), "gelu")
    with pytest.raises(ValueError, match="leaky_relu needs a finite alpha >= 0"):
        K.activation_forward(f32(3), f32(3), "leaky_relu", -1.0)
    with pytest.raises(ValueError, match="y has shape"):
        K.activation_forward(f32(3), f32(4), "tanh")
    buf = f32(5)
    with pytest.raises(ValueError, match="dx must not share memory with dy"):
        K.activation_backward(buf[:4], f32(4), buf[1:], "relu")
    with pytest.raises(ValueError, match=r"rate must be in \[0, 1\)"):
        K.dropout(f32(3), f32(3), 1.0, 0, 0)
    with pytest.raises(ValueError, match=r"out has shape \(2, 3, 4\), expected \(2, 4, 3\)"):
        K.batched_transpose(f32(2, 3, 4), f32(2, 3, 4))


def test_optimizer_steps_reject_bad_arguments():
    p, g = f32(5), f32(5)
    with pytest.raises(ValueError, match="momentum needs a velocity buffer"):
        K.sgd_step(p, g, None, 0.1, 0.9, False, 0.0, 1.0, 0.0)
    with pytest.raises(ValueError, match=r"grad has shape \(4,\), expected the shape of param"):
        K.sgd_step(p, f32(4), None, 0.1, 0.0, False, 0.0, 1.0, 0.0)
    with pytest.raises(ValueError, match="param must not share memory with m"):
        K.adam_step(p, g, p, f32(5), 1e-3, 0.9, 0.999, 1e-8, 0.0, False, 1, 1.0, 0.0)
    with pytest.raises(ValueError, match="step counts from 1"):
        K.adam_step(p, g, f32(5), f32(5), 1e-3, 0.9, 0.999, 1e-8, 0.0, False, 0, 1.0, 0.0)
    with pytest.raises(ValueError, match="param is read-only"):
        ro = f32(5)
        ro.flags.writeable = False
        K.adam_step(ro, g, f32(5), f32(5), 1e-3, 0.9, 0.999, 1e-8, 0.0, False, 1, 1.0, 0.0)
