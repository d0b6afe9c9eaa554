#include "elementwise/elementwise.hpp"

#include <algorithm>
#include <cmath>

#include "core/parallel.hpp"
#include "python/registry.hpp"

namespace mf {

void activation_forward(Activation f, const float* x, float* y, long n, float alpha) {
    switch (f) {
        case Activation::Relu:
            MF_PARALLEL_FOR_IF(n >= MIN_PARALLEL_ELEMS)(long k = 0; k < n; ++k) y[k] = x[k] > 0.0f ? x[k] : 0.0f;
            break;
        case Activation::LeakyRelu:
            MF_PARALLEL_FOR_IF(n >= MIN_PARALLEL_ELEMS)(long k = 0; k < n; ++k) y[k] = x[k] > 0.0f ? x[k] : alpha * x[k];
            break;
        case Activation::Sigmoid:
            MF_PARALLEL_FOR_IF(n >= MIN_PARALLEL_ELEMS)(long k = 0; k < n; ++k) y[k] = 1.0f / (1.0f + std::exp(-x[k]));
            break;
        case Activation::Tanh:
            MF_PARALLEL_FOR_IF(n >= MIN_PARALLEL_ELEMS)(long k = 0; k < n; ++k) y[k] = std::tanh(x[k]);
            break;
    }
}

void activation_backward(Activation f, const float* dy, const float* y, float* dx, long n, float alpha) {
    switch (f) {
        case Activation::Relu:
            MF_PARALLEL_FOR_IF(n >= MIN_PARALLEL_ELEMS)(long k = 0; k < n; ++k) dx[k] = y[k] > 0.0f ? dy[k] : 0.0f;
            break;
        case Activation::LeakyRelu:
            MF_PARALLEL_FOR_IF(n >= MIN_PARALLEL_ELEMS)(long k = 0; k < n; ++k) dx[k] = y[k] > 0.0f ? dy[k] : alpha * dy[k];
            break;
        case Activation::Sigmoid:
            MF_PARALLEL_FOR_IF(n >= MIN_PARALLEL_ELEMS)(long k = 0; k < n; ++k) dx[k] = dy[k] * y[k] * (1.0f - y[k]);
            break;
        case Activation::Tanh:
            MF_PARALLEL_FOR_IF(n >= MIN_PARALLEL_ELEMS)(long k = 0; k < n; ++k) dx[k] = dy[k] * (1.0f - y[k] * y[k]);
            break;
    }
}

void dropout(const float* x, float* y, long n, uint32_t threshold, float scale, uint64_t seed, uint64_t step) {
    const uint64_t key = dropout_key(seed, step);
    MF_PARALLEL_FOR_IF(n >= MIN_PARALLEL_ELEMS)(long k = 0; k < n; ++k)
        y[k] = dropout_bits(key, static_cast<uint64_t>(k)) >= threshold ? x[k] * scale : 0.0f;
}

void batched_transpose(const float* x, int B, int R, int S, float* out) {
    constexpr int TILE = 32;  // square tiles keep both the reads and the writes in cache lines
    const long plane = static_cast<long>(R) * S;
    MF_PARALLEL_FOR_IF(B * plane >= MIN_PARALLEL_ELEMS)(int b = 0; b < B; ++b) {
        const float* src = x + b * plane;
        float* dst = out + b * plane;
        for (int r0 = 0; r0 < R; r0 += TILE)
            for (int s0 = 0; s0 < S; s0 += TILE)
                for (int r = r0; r < std::min(R, r0 + TILE); ++r)
                    for (int s = s0; s < std::min(S, s0 + TILE); ++s) dst[static_cast<long>(s) * R + r] = src[static_cast<long>(r) * S + s];
    }
}

}  // namespace mf

// -- the Python boundary: these kernels' checked bindings (python/registry.hpp) ------------------
namespace mfpy {
namespace {

using std::to_string;

mf::Activation activation_kind(const char* fn, const std::string& name, float alpha) {
    if (name == "relu") return mf::Activation::Relu;
    if (name == "leaky_relu") {
        if (!(alpha >= 0.0f) || !std::isfinite(alpha))
            throw py::value_error(std::string(fn) + ": leaky_relu needs a finite alpha >= 0, got " + to_string(alpha));
        return mf::Activation::LeakyRelu;
    }
    if (name == "sigmoid") return mf::Activation::Sigmoid;
    if (name == "tanh") return mf::Activation::Tanh;
    throw py::value_error(std::string(fn) + ": unknown activation '" + name + "' (relu, leaky_relu, sigmoid, tanh)");
}

py::array activation_forward(const py::object& x_obj, const py::object& y_obj, const std::string& kind, float alpha) {
    const char* fn = "activation_forward";
    const auto f = activation_kind(fn, kind, alpha);
    auto x = checked_any(fn, "x", x_obj, false);
    auto y = checked_any(fn, "y", y_obj, true);
    expect_same_shape(fn, "y", y, "x", x);
    expect_same_or_disjoint(fn, "y", y, "x", x);
    {
        py::gil_scoped_release nogil;
        mf::activation_forward(f, fptr(x), fptr_mut(y), static_cast<long>(x.size()), alpha);
    }
    return y;
}

py::array activation_backward(const py::object& dy_obj, const py::object& y_obj, const py::object& dx_obj,
                              const std::string& kind, float alpha) {
    const char* fn = "activation_backward";
    const auto f = activation_kind(fn, kind, alpha);
    auto dy = checked_any(fn, "dy", dy_obj, false);
    auto y = checked_any(fn, "y", y_obj, false);
    auto dx = checked_any(fn, "dx", dx_obj, true);
    expect_same_shape(fn, "y", y, "dy", dy);
    expect_same_shape(fn, "dx", dx, "dy", dy);
    expect_same_or_disjoint(fn, "dx", dx, "dy", dy);
    expect_no_alias(fn, "dx", dx, {{"y", &y}});
    {
        py::gil_scoped_release nogil;
        mf::activation_backward(f, fptr(dy), fptr(y), fptr_mut(dx), static_cast<long>(dy.size()), alpha);
    }
    return dx;
}

py::array dropout(const py::object& x_obj, const py::object& y_obj, double rate, uint64_t seed, uint64_t step) {
    const char* fn = "dropout";
    if (!(rate >= 0.0 && rate < 1.0)) throw py::value_error(std::string(fn) + ": rate must be in [0, 1), got " + to_string(rate));
    auto x = checked_any(fn, "x", x_obj, false);
    auto y = checked_any(fn, "y", y_obj, true);
    expect_same_shape(fn, "y", y, "x", x);
    expect_same_or_disjoint(fn, "y", y, "x", x);
    const auto threshold = static_cast<uint32_t>(std::llround(rate * 16777216.0));
    const auto scale = static_cast<float>(1.0 / (1.0 - rate));
    {
        py::gil_scoped_release nogil;
        mf::dropout(fptr(x), fptr_mut(y), static_cast<long>(x.size()), threshold, scale, seed, step);
    }
    return y;
}

py::array batched_transpose(const py::object& x_obj, const py::object& out_obj) {
    const char* fn = "batched_transpose";
    auto x = checked(fn, "x", x_obj, 3, false);
    auto out = checked(fn, "out", out_obj, 3, true);
    expect_int_range(fn, x);
    expect_shape(fn, "out", out, {x.shape(0), x.shape(2), x.shape(1)});
    expect_no_alias(fn, "out", out, {{"x", &x}});
    {
        py::gil_scoped_release nogil;
        mf::batched_transpose(fptr(x), as_int(fn, x.shape(0)), as_int(fn, x.shape(1)), as_int(fn, x.shape(2)),
                              fptr_mut(out));
    }
    return out;
}

}  // namespace

MF_BIND_KERNELS(bind_elementwise) {
    cls.def("activation_forward", method(&activation_forward), py::arg("x"), py::arg("y"), py::arg("kind"),
            py::arg("alpha") = 0.0f);
    cls.def("activation_backward", method(&activation_backward), py::arg("dy"), py::arg("y"), py::arg("dx"),
            py::arg("kind"), py::arg("alpha") = 0.0f);
    cls.def("dropout", method(&dropout), py::arg("x"), py::arg("y"), py::arg("rate"), py::arg("seed"), py::arg("step"));
    cls.def("batched_transpose", method(&batched_transpose), py::arg("x"), py::arg("out"));
}

}  // namespace mfpy
