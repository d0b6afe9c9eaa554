#include "pool/pool.hpp"

#include <algorithm>

#include "core/parallel.hpp"
#include "pool/pool_image.hpp"
#include "python/registry.hpp"

namespace mf {

void maxpool_forward(const float* __restrict x, int N, int H, int W, int C, int P, float* __restrict out,
                     int32_t* __restrict argmax) {
    const int OH = H / P, OW = W / P;
    const long out_rows = static_cast<long>(N) * OH;
    MF_PARALLEL_FOR_IF(out_rows * OW * C * P * P >= MIN_PARALLEL_ELEMS)(long r = 0; r < out_rows; ++r) {
        const int n = static_cast<int>(r / OH), oy = static_cast<int>(r % OH);
        maxpool_row_forward(x + static_cast<long>(n) * H * W * C, W, C, P, oy, out + r * OW * C, argmax + r * OW * C);
    }
}

long maxpool_backward(const float* __restrict dy, const int32_t* __restrict argmax, const float* __restrict out,
                      bool relu_mask, int N, int H, int W, int C, int P, float* __restrict dx) {
    const long in_size = static_cast<long>(H) * W * C, out_size = static_cast<long>(H / P) * (W / P) * C;
    long outside = 0;
    MF_PARALLEL_FOR_REDUCE_IF(N * in_size >= MIN_PARALLEL_ELEMS, outside)(int n = 0; n < N; ++n) {
        outside += maxpool_image_backward(dy + n * out_size, argmax + n * out_size, out + n * out_size, relu_mask, H, W,
                                          C, P, dx + n * in_size);
    }
    return outside;
}

void global_avgpool_forward(const float* x, int N, int HW, int C, float* out) {
    const float inv = 1.0f / static_cast<float>(HW);
    MF_PARALLEL_FOR_IF(static_cast<long>(N) * HW * C >= MIN_PARALLEL_ELEMS)(int n = 0; n < N; ++n) {
        float* o = out + static_cast<long>(n) * C;
        std::fill(o, o + C, 0.0f);
        const float* img = x + static_cast<long>(n) * HW * C;
        for (int p = 0; p < HW; ++p)
            for (int c = 0; c < C; ++c) o[c] += img[p * C + c];
        for (int c = 0; c < C; ++c) o[c] *= inv;
    }
}

void global_avgpool_backward(const float* dy, int N, int HW, int C, float* dx) {
    const float inv = 1.0f / static_cast<float>(HW);
    MF_PARALLEL_FOR_IF(static_cast<long>(N) * HW * C >= MIN_PARALLEL_ELEMS)(int n = 0; n < N; ++n) {
        const float* d = dy + static_cast<long>(n) * C;
        float* img = dx + static_cast<long>(n) * HW * C;
        for (int p = 0; p < HW; ++p)
            for (int c = 0; c < C; ++c) img[p * C + c] = d[c] * inv;
    }
}

}  // namespace mf

// -- the Python boundary: these kernels' checked bindings (python/registry.hpp) ------------------
namespace mfpy {
namespace {

using std::to_string;

py::array maxpool_forward(const py::object& x_obj, const py::object& out_obj, const py::object& arg_obj, int pool) {
    const char* fn = "maxpool_forward";
    expect_positive(fn, "pool", pool);
    auto x = checked(fn, "x", x_obj, 4, false);
    auto out = checked(fn, "out", out_obj, 4, true);
    auto arg = checked(fn, "argmax", arg_obj, 4, true, py::dtype::of<int32_t>());
    expect_int_range(fn, x);
    const int N = as_int(fn, x.shape(0)), H = as_int(fn, x.shape(1)), W = as_int(fn, x.shape(2)), C = as_int(fn, x.shape(3));
    if (H < pool || W < pool) throw py::value_error(std::string(fn) + ": x " + shape_str(x) + " is smaller than the pool");
    expect_shape(fn, "out", out, {N, H / pool, W / pool, C});
    expect_shape(fn, "argmax", arg, {N, H / pool, W / pool, C});
    expect_no_alias(fn, "out", out, {{"x", &x}, {"argmax", &arg}});
    expect_no_alias(fn, "argmax", arg, {{"x", &x}});
    {
        py::gil_scoped_release nogil;
        mf::maxpool_forward(fptr(x), N, H, W, C, pool, fptr_mut(out), static_cast<int32_t*>(arg.mutable_data()));
    }
    return out;
}

py::array maxpool_backward(const py::object& dy_obj, const py::object& arg_obj, const py::object& out_obj,
                           const py::object& dx_obj, int pool, bool relu_mask) {
    const char* fn = "maxpool_backward";
    expect_positive(fn, "pool", pool);
    auto dy = checked(fn, "dy", dy_obj, 4, false);
    auto arg = checked(fn, "argmax", arg_obj, 4, false, py::dtype::of<int32_t>());
    auto out = checked(fn, "out", out_obj, 4, false);
    auto dx = checked(fn, "dx", dx_obj, 4, true);
    expect_int_range(fn, dx);
    const int N = as_int(fn, dx.shape(0)), H = as_int(fn, dx.shape(1)), W = as_int(fn, dx.shape(2)), C = as_int(fn, dx.shape(3));
    expect_shape(fn, "dy", dy, {N, H / pool, W / pool, C});
    expect_shape(fn, "argmax", arg, {N, H / pool, W / pool, C});
    expect_shape(fn, "out", out, {N, H / pool, W / pool, C});
    expect_no_alias(fn, "dx", dx, {{"dy", &dy}, {"argmax", &arg}, {"out", &out}});
    // argmax decides where we write (see throw_first_bad_argmax).
    const auto* a = static_cast<const int32_t*>(arg.data());
    const long image = static_cast<long>(H) * W * C;
    long outside;
    {
        py::gil_scoped_release nogil;
        outside = mf::maxpool_backward(fptr(dy), a, fptr(out), relu_mask, N, H, W, C, pool, fptr_mut(dx));
    }
    if (outside) throw_first_bad_argmax(fn, arg, image);
    return dx;
}


py::array global_avgpool_forward(const py::object& x_obj, const py::object& out_obj) {
    const char* fn = "global_avgpool_forward";
    auto x = checked(fn, "x", x_obj, 4, false);
    auto out = checked(fn, "out", out_obj, 2, true);
    expect_int_range(fn, x);
    const int N = as_int(fn, x.shape(0)), HW = as_int(fn, x.shape(1) * x.shape(2)), C = as_int(fn, x.shape(3));
    if (HW == 0) throw py::value_error(std::string(fn) + ": x " + shape_str(x) + " has no pixels");
    expect_shape(fn, "out", out, {N, C});
    expect_no_alias(fn, "out", out, {{"x", &x}});
    {
        py::gil_scoped_release nogil;
        mf::global_avgpool_forward(fptr(x), N, HW, C, fptr_mut(out));
    }
    return out;
}

py::array global_avgpool_backward(const py::object& dy_obj, const py::object& dx_obj) {
    const char* fn = "global_avgpool_backward";
    auto dy = checked(fn, "dy", dy_obj, 2, false);
    auto dx = checked(fn, "dx", dx_obj, 4, true);
    expect_int_range(fn, dx);
    const int N = as_int(fn, dx.shape(0)), HW = as_int(fn, dx.shape(1) * dx.shape(2)), C = as_int(fn, dx.shape(3));
    if (HW == 0) throw py::value_error(std::string(fn) + ": dx " + shape_str(dx) + " has no pixels");
    expect_shape(fn, "dy", dy, {N, C});
    expect_no_alias(fn, "dx", dx, {{"dy", &dy}});
    {
        py::gil_scoped_release nogil;
        mf::global_avgpool_backward(fptr(dy), N, HW, C, fptr_mut(dx));
    }
    return dx;
}

}  // namespace

MF_BIND_KERNELS(bind_pooling) {
    cls.def("maxpool_forward", method(&maxpool_forward), py::arg("x"), py::arg("out"), py::arg("argmax"), py::arg("pool"));
    cls.def("maxpool_backward", method(&maxpool_backward), py::arg("dy"), py::arg("argmax"), py::arg("out"), py::arg("dx"),
            py::arg("pool"), py::arg("relu_mask") = false);
    cls.def("global_avgpool_forward", method(&global_avgpool_forward), py::arg("x"), py::arg("out"));
    cls.def("global_avgpool_backward", method(&global_avgpool_backward), py::arg("dy"), py::arg("dx"));
}

}  // namespace mfpy
