// The Python boundary of the layer and optimizer kernels: convolution, pooling, batch norm,
// activations, dropout and layout transposes. Same discipline as
// bindings.cpp: every argument checked and named, nothing converted, the GIL released.
#include <pybind11/pybind11.h>

#include <cmath>
#include <string>

#include "elementwise/augment.hpp"
#include "python/check.hpp"
#include "conv/conv.hpp"
#include "elementwise/elementwise.hpp"
#include "elementwise/norm.hpp"
#include "pool/pool.hpp"

namespace mfpy {

namespace {

using std::to_string;

int as_int(const char* fn, py::ssize_t v) {
    if (v > INT32_MAX) throw py::value_error(std::string(fn) + ": dimension too large");
    return static_cast<int>(v);
}

void expect_positive(const char* fn, const char* name, long v) {
    if (v < 1) throw py::value_error(std::string(fn) + ": " + name + " must be >= 1, got " + to_string(v));
}

float* optional_out(const char* fn, const char* name, const py::object& obj, std::initializer_list<py::ssize_t> dims,
                    py::array& holder, int ndim) {
    if (obj.is_none()) return nullptr;
    holder = checked(fn, name, obj, ndim, true);
    expect_shape(fn, name, holder, dims);
    return fptr_mut(holder);
}

// An optional (F,) bias: null when b is None; its array is kept in holder.
const float* optional_bias(const char* fn, const py::object& b_obj, int F, py::array& holder, const py::array& out) {
    if (b_obj.is_none()) return nullptr;
    holder = checked(fn, "b", b_obj, 1, false);
    expect_shape(fn, "b", holder, {F});
    expect_no_alias(fn, "out", out, {{"b", &holder}});
    return fptr(holder);
}

// -- convolution --------------------------------------------------------------------------------
// Every output window must start inside the padded input (it may run past it: that part reads zeros).
void check_windows(const char* fn, const mf::ConvGeom& g, const char* out_name, const py::array& out, const py::array& x) {
    if (static_cast<long>(g.OH - 1) * g.SH - g.PH >= g.H || static_cast<long>(g.OW - 1) * g.SW - g.PW >= g.W)
        throw py::value_error(std::string(fn) + ": " + out_name + " " + shape_str(out) +
                              " has windows past the padded input " + shape_str(x));
}

mf::ConvGeom conv_geom(const char* fn, int kh, int kw, int sh, int sw, int ph, int pw) {
    expect_positive(fn, "kernel height", kh);
    expect_positive(fn, "kernel width", kw);
    expect_positive(fn, "stride height", sh);
    expect_positive(fn, "stride width", sw);
    if (ph < 0 || pw < 0 || ph >= kh || pw >= kw)
        throw py::value_error(std::string(fn) + ": padding (" + to_string(ph) + ", " + to_string(pw) +
                              ") must be >= 0 and smaller than the kernel");
    mf::ConvGeom g{};
    g.KH = kh, g.KW = kw, g.SH = sh, g.SW = sw, g.PH = ph, g.PW = pw;
    return g;
}

py::array conv2d_forward(const mf::Context& ctx, const py::object& x_obj, const py::object& w_obj, const py::object& b_obj,
                         const py::object& out_obj, int kh, int kw, int sh, int sw, int ph, int pw, bool relu) {
    const char* fn = "conv2d_forward";
    mf::ConvGeom g = conv_geom(fn, kh, kw, sh, sw, ph, pw);
    auto x = checked(fn, "x", x_obj, 4, false);
    auto w = checked(fn, "w", w_obj, 2, false);
    auto out = checked(fn, "out", out_obj, 4, true);
    for (auto* a : {&x, &w, &out}) expect_int_range(fn, *a);
    g.N = as_int(fn, x.shape(0)), g.H = as_int(fn, x.shape(1)), g.W = as_int(fn, x.shape(2)), g.C = as_int(fn, x.shape(3));
    g.OH = as_int(fn, out.shape(1)), g.OW = as_int(fn, out.shape(2)), g.F = as_int(fn, out.shape(3));
    if (g.N < 1 || g.C < 1 || g.OH < 1 || g.OW < 1 || g.F < 1)
        throw py::value_error(std::string(fn) + ": empty x " + shape_str(x) + " or out " + shape_str(out));
    expect_shape(fn, "out", out, {g.N, g.OH, g.OW, g.F});
    expect_shape(fn, "w", w, {g.patch(), g.F});
    check_windows(fn, g, "out", out, x);
    py::array bias;
    const float* bp = optional_bias(fn, b_obj, g.F, bias, out);
    expect_no_alias(fn, "out", out, {{"x", &x}, {"w", &w}});
    {
        py::gil_scoped_release nogil;
        mf::conv2d_forward(ctx, fptr(x), fptr(w), bp, fptr_mut(out), g, relu);
    }
    return out;
}

void conv2d_backward(const mf::Context& ctx, const py::object& dy_obj, const py::object& x_obj, const py::object& w_obj,
                     const py::object& dw_obj, const py::object& db_obj, const py::object& dx_obj, int kh, int kw,
                     int sh, int sw, int ph, int pw) {
    const char* fn = "conv2d_backward";
    mf::ConvGeom g = conv_geom(fn, kh, kw, sh, sw, ph, pw);
    auto dy = checked(fn, "dy", dy_obj, 4, false);
    auto x = checked(fn, "x", x_obj, 4, false);
    auto w = checked(fn, "w", w_obj, 2, false);
    auto dw = checked(fn, "dw", dw_obj, 2, true);
    for (auto* a : {&dy, &x, &w, &dw}) expect_int_range(fn, *a);
    g.N = as_int(fn, x.shape(0)), g.H = as_int(fn, x.shape(1)), g.W = as_int(fn, x.shape(2)), g.C = as_int(fn, x.shape(3));
    g.OH = as_int(fn, dy.shape(1)), g.OW = as_int(fn, dy.shape(2)), g.F = as_int(fn, dy.shape(3));
    if (g.N < 1 || g.C < 1 || g.OH < 1 || g.OW < 1 || g.F < 1)
        throw py::value_error(std::string(fn) + ": empty x " + shape_str(x) + " or dy " + shape_str(dy));
    expect_shape(fn, "dy", dy, {g.N, g.OH, g.OW, g.F});
    expect_shape(fn, "w", w, {g.patch(), g.F});
    expect_shape(fn, "dw", dw, {g.patch(), g.F});
    check_windows(fn, g, "dy", dy, x);
    py::array db, dx;
    float* dbp = optional_out(fn, "db", db_obj, {g.F}, db, 1);
    float* dxp = optional_out(fn, "dx", dx_obj, {g.N, g.H, g.W, g.C}, dx, 4);
    expect_no_alias(fn, "dw", dw, {{"dy", &dy}, {"x", &x}, {"w", &w}});
    if (dbp) expect_no_alias(fn, "db", db, {{"dy", &dy}, {"x", &x}, {"w", &w}, {"dw", &dw}});
    if (dxp) expect_no_alias(fn, "dx", dx, {{"dy", &dy}, {"x", &x}, {"w", &w}, {"dw", &dw}});
    if (dxp && dbp) expect_no_alias(fn, "dx", dx, {{"db", &db}});
    {
        py::gil_scoped_release nogil;
        mf::conv2d_backward(ctx, fptr(dy), fptr(x), fptr(w), fptr_mut(dw), dbp, dxp, g);
    }
}

// -- pooling ------------------------------------------------------------------------------------
// The kernels skip and count argmax entries outside their image; this names the first one (the
// scan runs only on that error path).
[[noreturn]] void throw_first_bad_argmax(const char* fn, const py::array& arg, long image) {
    const auto* a = static_cast<const int32_t*>(arg.data());
    for (py::ssize_t k = 0; k < arg.size(); ++k) {
        if (a[k] < 0 || a[k] >= image)
            throw py::value_error(std::string(fn) + ": argmax entry " + to_string(k) + " = " + to_string(a[k]) +
                                  " is outside an image of " + to_string(image) + " elements");
    }
    throw py::value_error(std::string(fn) + ": argmax has entries outside their image");
}

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

// -- convolution + max pool, fused ----------------------------------------------------------------
// The conv output is (N, oh, ow, F), passed as oh/ow since the pooled shape does not determine it.
// Returns False where the geometry has no fused kernel: the caller then runs conv2d_forward and
// maxpool_forward (backward: maxpool_backward and conv2d_backward). The forward pass has then
// touched nothing; the backward pass may have written dw, db and dx, which the caller overwrites.
mf::ConvGeom conv_pool_geom(const char* fn, const py::array& x, const py::array& w, const py::array& pooled, int kh,
                            int kw, int sh, int sw, int ph, int pw, int oh, int ow, int pool) {
    mf::ConvGeom g = conv_geom(fn, kh, kw, sh, sw, ph, pw);
    expect_positive(fn, "pool", pool);
    expect_positive(fn, "conv output height", oh);
    expect_positive(fn, "conv output width", ow);
    g.N = as_int(fn, x.shape(0)), g.H = as_int(fn, x.shape(1)), g.W = as_int(fn, x.shape(2)), g.C = as_int(fn, x.shape(3));
    g.OH = oh, g.OW = ow, g.F = as_int(fn, pooled.shape(3));
    if (g.N < 1 || g.C < 1 || g.F < 1) throw py::value_error(std::string(fn) + ": empty x " + shape_str(x));
    if (oh < pool || ow < pool)
        throw py::value_error(std::string(fn) + ": a " + to_string(pool) + "x" + to_string(pool) +
                              " pool does not fit the " + to_string(oh) + "x" + to_string(ow) + " conv output");
    expect_shape(fn, "w", w, {g.patch(), g.F});
    check_windows(fn, g, "the conv output", pooled, x);
    if (static_cast<long>(g.OH) * g.OW * g.F > INT32_MAX)  // argmax holds offsets within an image
        throw py::value_error(std::string(fn) + ": the conv output image is too large for int32 argmax offsets");
    return g;
}

bool conv2d_maxpool_forward(const mf::Context& ctx, const py::object& x_obj, const py::object& w_obj, const py::object& b_obj,
                            const py::object& out_obj, const py::object& arg_obj, int kh, int kw, int sh, int sw,
                            int ph, int pw, int oh, int ow, int pool, bool relu) {
    const char* fn = "conv2d_maxpool_forward";
    auto x = checked(fn, "x", x_obj, 4, false);
    auto w = checked(fn, "w", w_obj, 2, false);
    auto out = checked(fn, "out", out_obj, 4, true);
    auto arg = checked(fn, "argmax", arg_obj, 4, true, py::dtype::of<int32_t>());
    for (auto* a : {&x, &w, &out}) expect_int_range(fn, *a);
    const mf::ConvGeom g = conv_pool_geom(fn, x, w, out, kh, kw, sh, sw, ph, pw, oh, ow, pool);
    expect_shape(fn, "out", out, {g.N, oh / pool, ow / pool, g.F});
    expect_shape(fn, "argmax", arg, {g.N, oh / pool, ow / pool, g.F});
    py::array bias;
    const float* bp = optional_bias(fn, b_obj, g.F, bias, out);
    expect_no_alias(fn, "out", out, {{"x", &x}, {"w", &w}, {"argmax", &arg}});
    expect_no_alias(fn, "argmax", arg, {{"x", &x}, {"w", &w}});
    if (bp) expect_no_alias(fn, "argmax", arg, {{"b", &bias}});
    py::gil_scoped_release nogil;
    auto* a = static_cast<int32_t*>(arg.mutable_data());
    return mf::conv2d_maxpool_forward(ctx, fptr(x), fptr(w), bp, fptr_mut(out), a, g, relu, pool);
}

bool conv2d_maxpool_backward(const mf::Context& ctx, const py::object& dy_obj, const py::object& arg_obj, const py::object& out_obj,
                             const py::object& x_obj, const py::object& w_obj, const py::object& dw_obj,
                             const py::object& db_obj, int kh, int kw, int sh, int sw, int ph, int pw, int oh, int ow,
                             int pool, bool relu_mask, const py::object& dx_obj) {
    const char* fn = "conv2d_maxpool_backward";
    auto dy = checked(fn, "dy", dy_obj, 4, false);
    auto arg = checked(fn, "argmax", arg_obj, 4, false, py::dtype::of<int32_t>());
    auto out = checked(fn, "out", out_obj, 4, false);
    auto x = checked(fn, "x", x_obj, 4, false);
    auto w = checked(fn, "w", w_obj, 2, false);
    auto dw = checked(fn, "dw", dw_obj, 2, true);
    for (auto* a : {&dy, &x, &w, &dw}) expect_int_range(fn, *a);
    const mf::ConvGeom g = conv_pool_geom(fn, x, w, dy, kh, kw, sh, sw, ph, pw, oh, ow, pool);
    const long image = static_cast<long>(g.OH) * g.OW * g.F;
    expect_shape(fn, "dy", dy, {g.N, oh / pool, ow / pool, g.F});
    expect_shape(fn, "argmax", arg, {g.N, oh / pool, ow / pool, g.F});
    expect_shape(fn, "out", out, {g.N, oh / pool, ow / pool, g.F});
    expect_shape(fn, "dw", dw, {g.patch(), g.F});
    py::array db, dx;
    float* dbp = optional_out(fn, "db", db_obj, {g.F}, db, 1);
    float* dxp = optional_out(fn, "dx", dx_obj, {g.N, g.H, g.W, g.C}, dx, 4);
    expect_no_alias(fn, "dw", dw, {{"dy", &dy}, {"argmax", &arg}, {"out", &out}, {"x", &x}, {"w", &w}});
    if (dbp) expect_no_alias(fn, "db", db, {{"dy", &dy}, {"argmax", &arg}, {"out", &out}, {"x", &x}, {"w", &w}, {"dw", &dw}});
    if (dxp) {
        expect_no_alias(fn, "dx", dx, {{"dy", &dy}, {"argmax", &arg}, {"out", &out}, {"x", &x}, {"w", &w}, {"dw", &dw}});
        if (dbp) expect_no_alias(fn, "dx", dx, {{"db", &db}});
    }
    long bad = 0;
    bool fused;
    {
        py::gil_scoped_release nogil;
        const auto* a = static_cast<const int32_t*>(arg.data());
        fused = mf::conv2d_maxpool_backward(ctx, fptr(dy), a, fptr(out), relu_mask, fptr(x), fptr(w), fptr_mut(dw),
                                            dbp, dxp, g, pool, &bad);
    }
    if (bad) throw_first_bad_argmax(fn, arg, image);
    return fused;
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

// -- batch norm ---------------------------------------------------------------------------------
mf::BatchNormArgs bn_args(const char* fn, const py::array& x, float eps, float momentum) {
    expect_int_range(fn, x);
    if (x.shape(0) < 1 || x.shape(1) < 1) throw py::value_error(std::string(fn) + ": x is empty, shape " + shape_str(x));
    if (!(eps > 0.0f)) throw py::value_error(std::string(fn) + ": eps must be > 0");
    if (!(momentum >= 0.0f && momentum <= 1.0f)) throw py::value_error(std::string(fn) + ": momentum must be in [0, 1]");
    return {as_int(fn, x.shape(0)), as_int(fn, x.shape(1)), eps, momentum};
}

py::array batchnorm_forward_train(const py::object& x_obj, const py::object& g_obj, const py::object& b_obj,
                                  const py::object& y_obj, const py::object& sm_obj, const py::object& si_obj,
                                  const py::object& rm_obj, const py::object& rv_obj, float eps, float momentum) {
    const char* fn = "batchnorm_forward_train";
    auto x = checked(fn, "x", x_obj, 2, false);
    auto a = bn_args(fn, x, eps, momentum);
    auto gamma = checked(fn, "gamma", g_obj, 1, false);
    auto beta = checked(fn, "beta", b_obj, 1, false);
    auto y = checked(fn, "y", y_obj, 2, true);
    auto sm = checked(fn, "save_mean", sm_obj, 1, true);
    auto si = checked(fn, "save_invstd", si_obj, 1, true);
    auto rm = checked(fn, "running_mean", rm_obj, 1, true);
    auto rv = checked(fn, "running_var", rv_obj, 1, true);
    expect_same_shape(fn, "y", y, "x", x);
    for (auto [name, arr] : {std::pair{"gamma", &gamma}, {"beta", &beta}, {"save_mean", &sm}, {"save_invstd", &si},
                             {"running_mean", &rm}, {"running_var", &rv}})
        expect_shape(fn, name, *arr, {a.C});
    expect_no_alias(fn, "y", y, {{"x", &x}, {"gamma", &gamma}, {"beta", &beta}, {"save_mean", &sm}, {"save_invstd", &si},
                                 {"running_mean", &rm}, {"running_var", &rv}});
    for (auto [name, arr] : {std::pair{"save_mean", &sm}, {"save_invstd", &si}, {"running_mean", &rm}, {"running_var", &rv}})
        expect_no_alias(fn, name, *arr, {{"x", &x}, {"gamma", &gamma}, {"beta", &beta}});
    expect_no_alias(fn, "save_mean", sm, {{"save_invstd", &si}, {"running_mean", &rm}, {"running_var", &rv}});
    expect_no_alias(fn, "save_invstd", si, {{"running_mean", &rm}, {"running_var", &rv}});
    expect_no_alias(fn, "running_mean", rm, {{"running_var", &rv}});
    {
        py::gil_scoped_release nogil;
        mf::batchnorm_forward_train(fptr(x), fptr(gamma), fptr(beta), a, fptr_mut(y), fptr_mut(sm), fptr_mut(si),
                                    fptr_mut(rm), fptr_mut(rv));
    }
    return y;
}

py::array batchnorm_forward_infer(const py::object& x_obj, const py::object& g_obj, const py::object& b_obj,
                                  const py::object& rm_obj, const py::object& rv_obj, const py::object& y_obj,
                                  float eps) {
    const char* fn = "batchnorm_forward_infer";
    auto x = checked(fn, "x", x_obj, 2, false);
    auto a = bn_args(fn, x, eps, 0.0f);
    auto gamma = checked(fn, "gamma", g_obj, 1, false);
    auto beta = checked(fn, "beta", b_obj, 1, false);
    auto rm = checked(fn, "running_mean", rm_obj, 1, false);
    auto rv = checked(fn, "running_var", rv_obj, 1, false);
    auto y = checked(fn, "y", y_obj, 2, true);
    expect_same_shape(fn, "y", y, "x", x);
    for (auto [name, arr] : {std::pair{"gamma", &gamma}, {"beta", &beta}, {"running_mean", &rm}, {"running_var", &rv}})
        expect_shape(fn, name, *arr, {a.C});
    expect_no_alias(fn, "y", y, {{"x", &x}, {"gamma", &gamma}, {"beta", &beta}, {"running_mean", &rm}, {"running_var", &rv}});
    {
        py::gil_scoped_release nogil;
        mf::batchnorm_forward_infer(fptr(x), fptr(gamma), fptr(beta), fptr(rm), fptr(rv), a, fptr_mut(y));
    }
    return y;
}

void batchnorm_backward(const py::object& dy_obj, const py::object& x_obj, const py::object& g_obj,
                        const py::object& sm_obj, const py::object& si_obj, const py::object& dx_obj,
                        const py::object& dg_obj, const py::object& db_obj) {
    const char* fn = "batchnorm_backward";
    auto dy = checked(fn, "dy", dy_obj, 2, false);
    auto x = checked(fn, "x", x_obj, 2, false);
    auto a = bn_args(fn, x, 1.0f, 0.0f);
    auto gamma = checked(fn, "gamma", g_obj, 1, false);
    auto sm = checked(fn, "save_mean", sm_obj, 1, false);
    auto si = checked(fn, "save_invstd", si_obj, 1, false);
    auto dx = checked(fn, "dx", dx_obj, 2, true);
    auto dg = checked(fn, "dgamma", dg_obj, 1, true);
    auto db = checked(fn, "dbeta", db_obj, 1, true);
    expect_same_shape(fn, "dy", dy, "x", x);
    expect_same_shape(fn, "dx", dx, "x", x);
    for (auto [name, arr] : {std::pair{"gamma", &gamma}, {"save_mean", &sm}, {"save_invstd", &si}, {"dgamma", &dg}, {"dbeta", &db}})
        expect_shape(fn, name, *arr, {a.C});
    for (auto [name, arr] : {std::pair{"dx", &dx}, {"dgamma", &dg}, {"dbeta", &db}})
        expect_no_alias(fn, name, *arr, {{"dy", &dy}, {"x", &x}, {"gamma", &gamma}, {"save_mean", &sm}, {"save_invstd", &si}});
    expect_no_alias(fn, "dx", dx, {{"dgamma", &dg}, {"dbeta", &db}});
    expect_no_alias(fn, "dgamma", dg, {{"dbeta", &db}});
    {
        py::gil_scoped_release nogil;
        mf::batchnorm_backward(fptr(dy), fptr(x), fptr(gamma), fptr(sm), fptr(si), a, fptr_mut(dx), fptr_mut(dg),
                               fptr_mut(db));
    }
}

// -- elementwise --------------------------------------------------------------------------------
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

py::array affine_warp(const py::object& x_obj, const py::object& params_obj, const py::object& out_obj) {
    const char* fn = "affine_warp";
    auto x = checked(fn, "x", x_obj, 4, false);
    auto params = checked(fn, "params", params_obj, 2, false);
    auto out = checked(fn, "out", out_obj, 4, true);
    expect_int_range(fn, x);
    expect_shape(fn, "params", params, {x.shape(0), 6});
    expect_shape(fn, "out", out, {x.shape(0), x.shape(1), x.shape(2), x.shape(3)});
    expect_no_alias(fn, "out", out, {{"x", &x}, {"params", &params}});
    const float* p = fptr(params);
    for (py::ssize_t k = 0; k < params.size(); ++k)
        if (!std::isfinite(p[k]) || std::fabs(p[k]) > 1e6f)
            throw py::value_error(std::string(fn) + ": params[" + to_string(k / 6) + "] holds a non-finite or huge value");
    {
        py::gil_scoped_release nogil;
        mf::affine_warp(fptr(x), p, as_int(fn, x.shape(0)), as_int(fn, x.shape(1)), as_int(fn, x.shape(2)),
                        as_int(fn, x.shape(3)), fptr_mut(out));
    }
    return out;
}

}  // namespace

void bind_cnn_kernels(py::class_<Kernels>& k) {
    k.def("conv2d_forward", method(&conv2d_forward), py::arg("x"), py::arg("w"), py::arg("b"), py::arg("out"),
          py::arg("kh"), py::arg("kw"), py::arg("sh"), py::arg("sw"), py::arg("ph"), py::arg("pw"),
          py::arg("relu") = false, "NHWC convolution: out = relu?(im2col(x) @ w + b); b may be None.");
    k.def("conv2d_maxpool_forward", method(&conv2d_maxpool_forward), py::arg("x"), py::arg("w"), py::arg("b"),
          py::arg("out"), py::arg("argmax"), py::arg("kh"), py::arg("kw"), py::arg("sh"), py::arg("sw"), py::arg("ph"),
          py::arg("pw"), py::arg("oh"), py::arg("ow"), py::arg("pool"), py::arg("relu") = false,
          "conv2d_forward then maxpool_forward in one pass where a fused kernel exists (one input channel at "
          "stride 1; a 2x2 pool after a Winograd convolution); returns False, writing nothing, where not");
    k.def("conv2d_maxpool_backward", method(&conv2d_maxpool_backward), py::arg("dy"), py::arg("argmax"),
          py::arg("out"), py::arg("x"), py::arg("w"), py::arg("dw"), py::arg("db"), py::arg("kh"), py::arg("kw"),
          py::arg("sh"), py::arg("sw"), py::arg("ph"), py::arg("pw"), py::arg("oh"), py::arg("ow"), py::arg("pool"),
          py::arg("relu_mask") = false, py::arg("dx") = py::none(),
          "maxpool_backward then conv2d_backward (dw, db, and dx unless None) in one pass; False where no fused "
          "kernel exists, the outputs then to be computed by the caller");
    k.def("conv2d_backward", method(&conv2d_backward), py::arg("dy"), py::arg("x"), py::arg("w"), py::arg("dw"),
          py::arg("db"), py::arg("dx"), py::arg("kh"), py::arg("kw"), py::arg("sh"), py::arg("sw"), py::arg("ph"),
          py::arg("pw"), "dw = im2col(x)^T dy; db = sum(dy) unless None; dx = col2im(dy w^T) unless None.");
    k.def("maxpool_forward", method(&maxpool_forward), py::arg("x"), py::arg("out"), py::arg("argmax"), py::arg("pool"));
    k.def("maxpool_backward", method(&maxpool_backward), py::arg("dy"), py::arg("argmax"), py::arg("out"), py::arg("dx"),
          py::arg("pool"), py::arg("relu_mask") = false);
    k.def("global_avgpool_forward", method(&global_avgpool_forward), py::arg("x"), py::arg("out"));
    k.def("global_avgpool_backward", method(&global_avgpool_backward), py::arg("dy"), py::arg("dx"));
    k.def("batchnorm_forward_train", method(&batchnorm_forward_train), py::arg("x"), py::arg("gamma"), py::arg("beta"),
          py::arg("y"), py::arg("save_mean"), py::arg("save_invstd"), py::arg("running_mean"), py::arg("running_var"),
          py::arg("eps"), py::arg("momentum"));
    k.def("batchnorm_forward_infer", method(&batchnorm_forward_infer), py::arg("x"), py::arg("gamma"), py::arg("beta"),
          py::arg("running_mean"), py::arg("running_var"), py::arg("y"), py::arg("eps"));
    k.def("batchnorm_backward", method(&batchnorm_backward), py::arg("dy"), py::arg("x"), py::arg("gamma"),
          py::arg("save_mean"), py::arg("save_invstd"), py::arg("dx"), py::arg("dgamma"), py::arg("dbeta"));
    k.def("activation_forward", method(&activation_forward), py::arg("x"), py::arg("y"), py::arg("kind"),
          py::arg("alpha") = 0.0f);
    k.def("activation_backward", method(&activation_backward), py::arg("dy"), py::arg("y"), py::arg("dx"),
          py::arg("kind"), py::arg("alpha") = 0.0f);
    k.def("dropout", method(&dropout), py::arg("x"), py::arg("y"), py::arg("rate"), py::arg("seed"), py::arg("step"));
    k.def("batched_transpose", method(&batched_transpose), py::arg("x"), py::arg("out"));
    k.def("affine_warp", method(&affine_warp), py::arg("x"), py::arg("params"), py::arg("out"));
}

}  // namespace mfpy
