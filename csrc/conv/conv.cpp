// The convolution dispatcher: which algorithm computes a convolution, decided in one place from
// its geometry and the caller's settings. The algorithms themselves live beside it: im2col.cpp,
// direct/ (one input channel), winograd/ (3x3, stride 1).
#include "conv/conv.hpp"

#include <cstring>
#include <stdexcept>
#include <string>

#include "conv/direct/conv_direct.hpp"
#include "conv/im2col.hpp"
#include "conv/winograd/conv_winograd.hpp"
#include "python/registry.hpp"

namespace mf {

namespace {

// Whether g runs by Winograd F(2x2, 3x3) under the algorithm setting a.
bool use_winograd(ConvAlgorithm a, const ConvGeom& g) {
    if (g.KH != 3 || g.KW != 3 || g.SH != 1 || g.SW != 1) return false;
    switch (a) {
        case ConvAlgorithm::Im2col: return false;
        case ConvAlgorithm::Winograd: return true;
        case ConvAlgorithm::Auto: break;
    }
    // The tile GEMMs have K = C (forward) and K = F (input gradient): below 16 channels they are
    // too thin for the packed micro-kernel, and im2col is as fast (docs/performance.md).
    return g.C >= 16 && g.F >= 16;
}

}  // namespace

const char* conv_algorithm_name(ConvAlgorithm a) {
    switch (a) {
        case ConvAlgorithm::Auto: return "auto";
        case ConvAlgorithm::Im2col: return "im2col";
        case ConvAlgorithm::Winograd: return "winograd";
    }
    return "?";
}

ConvAlgorithm parse_conv_algorithm(const char* name) {
    for (auto a : {ConvAlgorithm::Auto, ConvAlgorithm::Im2col, ConvAlgorithm::Winograd})
        if (std::strcmp(name, conv_algorithm_name(a)) == 0) return a;
    throw std::invalid_argument(std::string("unknown conv algorithm '") + name + "' (auto, im2col, winograd)");
}

void conv2d_forward(const Context& ctx, const float* x, const float* w, const float* bias, float* out,
                    const ConvGeom& g, bool relu) {
    if (use_winograd(ctx.conv, g)) return winograd_forward(ctx.gemm, x, w, bias, out, g, relu);
    if (conv1ch_forward(ctx.gemm, x, w, bias, out, g, relu)) return;  // one input channel: no patch matrix
    im2col_forward(ctx.gemm, x, w, bias, out, g, relu);
}

void conv2d_backward(const Context& ctx, const float* dy, const float* x, const float* w, float* dw, float* db,
                     float* dx, const ConvGeom& g) {
    if (use_winograd(ctx.conv, g)) return winograd_backward(ctx.gemm, dy, x, w, dw, db, dx, g);
    if (!dx && conv1ch_backward(ctx.gemm, dy, x, dw, db, g)) return;  // a first layer with one channel
    im2col_backward(ctx.gemm, dy, x, w, dw, db, dx, g);
}

bool conv2d_maxpool_forward(const Context& ctx, const float* x, const float* w, const float* bias, float* out,
                            int32_t* argmax, const ConvGeom& g, bool relu, int pool) {
    if (use_winograd(ctx.conv, g) && winograd_pool_forward(ctx.gemm, x, w, bias, out, argmax, g, relu, pool))
        return true;
    return conv1ch_pool_forward(ctx.gemm, x, w, bias, out, argmax, g, relu, pool);
}

bool conv2d_maxpool_backward(const Context& ctx, const float* dy, const int32_t* argmax, const float* out,
                             bool relu_mask, const float* x, const float* w, float* dw, float* db, float* dx,
                             const ConvGeom& g, int pool, long* bad_argmax) {
    *bad_argmax = 0;
    if (use_winograd(ctx.conv, g) &&
        winograd_pool_backward(ctx.gemm, dy, argmax, out, relu_mask, x, w, dw, db, dx, g, pool))
        return true;
    return !dx && conv1ch_pool_backward(ctx.gemm, dy, argmax, out, relu_mask, x, dw, db, g, pool, bad_argmax);
}

}  // namespace mf

// -- the Python boundary: these kernels' checked bindings (python/registry.hpp) ------------------
namespace mfpy {
namespace {

using std::to_string;

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

}  // namespace

MF_BIND_KERNELS(bind_convolutions) {
    cls.def("conv2d_forward", method(&conv2d_forward), py::arg("x"), py::arg("w"), py::arg("b"), py::arg("out"),
            py::arg("kh"), py::arg("kw"), py::arg("sh"), py::arg("sw"), py::arg("ph"), py::arg("pw"),
            py::arg("relu") = false, "NHWC convolution: out = relu?(im2col(x) @ w + b); b may be None.");
    cls.def("conv2d_maxpool_forward", method(&conv2d_maxpool_forward), py::arg("x"), py::arg("w"), py::arg("b"),
            py::arg("out"), py::arg("argmax"), py::arg("kh"), py::arg("kw"), py::arg("sh"), py::arg("sw"), py::arg("ph"),
            py::arg("pw"), py::arg("oh"), py::arg("ow"), py::arg("pool"), py::arg("relu") = false,
            "conv2d_forward then maxpool_forward in one pass where a fused kernel exists (one input channel at "
            "stride 1; a 2x2 pool after a Winograd convolution); returns False, writing nothing, where not");
    cls.def("conv2d_maxpool_backward", method(&conv2d_maxpool_backward), py::arg("dy"), py::arg("argmax"),
            py::arg("out"), py::arg("x"), py::arg("w"), py::arg("dw"), py::arg("db"), py::arg("kh"), py::arg("kw"),
            py::arg("sh"), py::arg("sw"), py::arg("ph"), py::arg("pw"), py::arg("oh"), py::arg("ow"), py::arg("pool"),
            py::arg("relu_mask") = false, py::arg("dx") = py::none(),
            "maxpool_backward then conv2d_backward (dw, db, and dx unless None) in one pass; False where no fused "
            "kernel exists, the outputs then to be computed by the caller");
    cls.def("conv2d_backward", method(&conv2d_backward), py::arg("dy"), py::arg("x"), py::arg("w"), py::arg("dw"),
            py::arg("db"), py::arg("dx"), py::arg("kh"), py::arg("kw"), py::arg("sh"), py::arg("sw"), py::arg("ph"),
            py::arg("pw"), "dw = im2col(x)^T dy; db = sum(dy) unless None; dx = col2im(dy w^T) unless None.");
}

}  // namespace mfpy
