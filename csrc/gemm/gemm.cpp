// sgemm: runs the micro-kernel it is given; best_gemm_kernel picks one from what the CPU reports.
#include "gemm/gemm.hpp"

#include <stdexcept>
#include <string>

#include "gemm/gemm_kernel.hpp"
#include "python/registry.hpp"

namespace mf {

namespace {

// Cache blocking per tile shape: {MC, KC, NC}. 6 x 16 (AVX2 and generic): MC x KC block of A in
// L2 (144 KiB), KC x NR sliver of B in L1 (16 KiB), KC x NC panel of B in L3. 12 x 32 (AVX-512):
// one K block up to KC = 800, so an MNIST image's 784 inputs are one pass, with the A block
// (450 KiB) and the B sliver (100 KiB) both in L2: the AVX-512 cores have 1-2 MiB of it, and
// measured against KC = 256 (B sliver in L1, 784 as 4 x 196) a single pass saves three C
// round trips per tile (128x128x784: 251 -> 267 GFLOP/s hot, the 784-128-64-10 epoch 6 %
// faster, the basic CNN 6 %; 1024^3 and 2048^3 unchanged or better). Overridable only to sweep
// a new machine.
#ifndef MNISTFAST_BLOCKING_YMM
#define MNISTFAST_BLOCKING_YMM {144, 256, 2048}
#endif
#ifndef MNISTFAST_BLOCKING_ZMM
#define MNISTFAST_BLOCKING_ZMM {144, 800, 2048}
#endif
constexpr Blocking BLOCKING_YMM MNISTFAST_BLOCKING_YMM;
[[maybe_unused]] constexpr Blocking BLOCKING_ZMM MNISTFAST_BLOCKING_ZMM;

bool cpu_supports(const char* what) {
#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    if (std::string(what) == "avx2") return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if (std::string(what) == "avx512") return __builtin_cpu_supports("avx512f");
    if (std::string(what) == "avx512bf16")
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bf16");
#endif
    (void)what;
    return false;
}

}  // namespace

GemmKernel best_gemm_kernel() {
    if (cpu_supports("avx512")) return GemmKernel::Avx512;
    return cpu_supports("avx2") ? GemmKernel::Avx2 : GemmKernel::Generic;
}

const char* gemm_kernel_name(GemmKernel k) {
    switch (k) {
        case GemmKernel::Naive: return "naive";
        case GemmKernel::Generic: return "generic";
        case GemmKernel::Avx2: return "avx2";
        case GemmKernel::Avx512: return "avx512";
        case GemmKernel::GenericBf16: return "generic-bf16";
        case GemmKernel::Avx512Bf16: return "avx512bf16";
    }
    return "?";
}

std::vector<GemmKernel> available_gemm_kernels() {
    std::vector<GemmKernel> ks{GemmKernel::Naive, GemmKernel::Generic};
    if (cpu_supports("avx2")) ks.push_back(GemmKernel::Avx2);
    if (cpu_supports("avx512")) ks.push_back(GemmKernel::Avx512);
    return ks;
}

std::vector<GemmKernel> available_bf16_gemm_kernels() {
    std::vector<GemmKernel> ks{GemmKernel::GenericBf16};
    if (cpu_supports("avx512bf16")) ks.push_back(GemmKernel::Avx512Bf16);
    return ks;
}

GemmKernel float_kernel(GemmKernel k) {
    switch (k) {
        case GemmKernel::GenericBf16: return GemmKernel::Generic;
        case GemmKernel::Avx512Bf16: return GemmKernel::Avx512;
        default: return k;
    }
}

GemmKernel parse_gemm_kernel(const std::string& name) {
    if (name == "auto") return best_gemm_kernel();
    for (const auto& ks : {available_gemm_kernels(), available_bf16_gemm_kernels()})
        for (GemmKernel k : ks)
            if (name == gemm_kernel_name(k)) return k;
    throw std::invalid_argument("gemm kernel '" + name + "' is not available on this CPU");
}

void sgemm(const GemmArgs& g, GemmKernel kernel) {
    switch (kernel) {
        case GemmKernel::Naive: return sgemm_naive(g);
        case GemmKernel::Generic: break;
        case GemmKernel::GenericBf16:
            return sgemm_blocked<MR_YMM, NR_YMM, true>(g, micro_kernel_generic_bf16, BLOCKING_YMM, pack_pairs_generic);
#if defined(__x86_64__) || defined(_M_X64)
        case GemmKernel::Avx2: return sgemm_blocked<MR_YMM, NR_YMM, false>(g, micro_kernel_avx2, BLOCKING_YMM, nullptr);
        case GemmKernel::Avx512: return sgemm_blocked<MR_ZMM, NR_ZMM, false>(g, micro_kernel_avx512, BLOCKING_ZMM, nullptr);
        case GemmKernel::Avx512Bf16: return sgemm_blocked<MR_ZMM, NR_ZMM, true>(g, micro_kernel_avx512bf16, BLOCKING_ZMM,
                                                                          pack_pairs_avx512bf16);
#else
        default: break;
#endif
    }
    sgemm_blocked<MR_YMM, NR_YMM, false>(g, micro_kernel_generic, BLOCKING_YMM, nullptr);
}

}  // namespace mf

// -- the Python boundary: these kernels' checked bindings (python/registry.hpp) ------------------
namespace mfpy {
namespace {

using std::to_string;

// out = op(a) @ op(b) over checked, C-contiguous arrays: the leading dimensions are the row lengths.
mf::GemmArgs gemm_args(const py::array& a, bool trans_a, const py::array& b, bool trans_b, py::array& out) {
    mf::GemmArgs g;
    g.trans_a = trans_a;
    g.trans_b = trans_b;
    g.M = static_cast<int>(out.shape(0));
    g.N = static_cast<int>(out.shape(1));
    g.K = static_cast<int>(trans_a ? a.shape(0) : a.shape(1));
    g.A = fptr(a);
    g.lda = a.shape(1);
    g.B = fptr(b);
    g.ldb = b.shape(1);
    g.C = fptr_mut(out);
    g.ldc = out.shape(1);
    return g;
}

py::array gemm(const mf::Context& ctx, const py::object& a_obj, const py::object& b_obj, const py::object& out_obj, bool trans_a,
               bool trans_b, float alpha, float beta) {
    const char* fn = "gemm";
    auto a = checked(fn, "a", a_obj, 2, false);
    auto b = checked(fn, "b", b_obj, 2, false);
    auto out = checked(fn, "out", out_obj, 2, true);
    const py::ssize_t M = trans_a ? a.shape(1) : a.shape(0);
    const py::ssize_t K = trans_a ? a.shape(0) : a.shape(1);
    const py::ssize_t Kb = trans_b ? b.shape(1) : b.shape(0);
    const py::ssize_t N = trans_b ? b.shape(0) : b.shape(1);
    if (K != Kb) {
        throw py::value_error(std::string(fn) + ": inner dimensions differ: op(a) is " + dims_str({M, K}) +
                              " but op(b) is " + dims_str({Kb, N}));
    }
    expect_shape(fn, "out", out, {M, N});
    expect_no_alias(fn, "out", out, {{"a", &a}, {"b", &b}});
    for (auto* arr : {&a, &b, &out}) expect_int_range(fn, *arr);

    mf::GemmArgs g = gemm_args(a, trans_a, b, trans_b, out);
    g.alpha = alpha;
    g.beta = beta;
    {
        py::gil_scoped_release nogil;
        mf::sgemm(g, ctx.gemm);
    }
    return out;
}

// out = relu?(x @ w + bias)
py::array linear_forward(const mf::Context& ctx, const py::object& x_obj, const py::object& w_obj, const py::object& b_obj,
                         const py::object& out_obj, bool relu) {
    const char* fn = "linear_forward";
    auto x = checked(fn, "x", x_obj, 2, false);
    auto w = checked(fn, "w", w_obj, 2, false);
    auto bias = checked(fn, "b", b_obj, 1, false);
    auto out = checked(fn, "out", out_obj, 2, true);
    const py::ssize_t M = x.shape(0), K = x.shape(1), N = w.shape(1);
    expect_shape(fn, "w", w, {K, N});
    expect_shape(fn, "b", bias, {N});
    expect_shape(fn, "out", out, {M, N});
    expect_no_alias(fn, "out", out, {{"x", &x}, {"w", &w}, {"b", &bias}});
    for (auto* arr : {&x, &w, &out}) expect_int_range(fn, *arr);

    mf::GemmArgs g = gemm_args(x, false, w, false, out);
    g.ep.bias = fptr(bias);
    g.ep.relu = relu;
    {
        py::gil_scoped_release nogil;
        mf::sgemm(g, ctx.gemm);
    }
    return out;
}

// out = (dy @ w^T) * (y > 0): the gradient reaching a ReLU layer's output y, through w.
py::array linear_backward_input(const mf::Context& ctx, const py::object& dy_obj, const py::object& w_obj, const py::object& y_obj,
                                const py::object& out_obj) {
    const char* fn = "linear_backward_input";
    auto dy = checked(fn, "dy", dy_obj, 2, false);
    auto w = checked(fn, "w", w_obj, 2, false);
    auto out = checked(fn, "out", out_obj, 2, true);
    const py::ssize_t M = dy.shape(0), N = dy.shape(1), K = w.shape(0);
    expect_shape(fn, "w", w, {K, N});
    expect_shape(fn, "out", out, {M, K});
    const bool masked = !y_obj.is_none();
    py::array y;
    if (masked) {
        y = checked(fn, "y", y_obj, 2, false);
        expect_shape(fn, "y", y, {M, K});
        expect_no_alias(fn, "out", out, {{"dy", &dy}, {"w", &w}, {"y", &y}});
    } else {
        expect_no_alias(fn, "out", out, {{"dy", &dy}, {"w", &w}});
    }
    for (auto* arr : {&dy, &w, &out}) expect_int_range(fn, *arr);

    mf::GemmArgs g = gemm_args(dy, false, w, true, out);
    if (masked) {
        g.ep.mask = fptr(y);
        g.ep.ldmask = K;
    }
    {
        py::gil_scoped_release nogil;
        mf::sgemm(g, ctx.gemm);
    }
    return out;
}

// A dense layer's parameter gradients from one GEMM: dw = alpha * x^T @ dy + beta * dw and
// db = alpha * dy.sum(0) + beta * db, the column sums made while the GEMM packs dy. alpha = -lr,
// beta = 1 on w and b themselves is their SGD step.
void linear_weight_grad(const mf::Context& ctx, const py::object& x_obj, const py::object& dy_obj, const py::object& dw_obj,
                        const py::object& db_obj, float alpha, float beta) {
    const char* fn = "linear_weight_grad";
    auto x = checked(fn, "x", x_obj, 2, false);
    auto dy = checked(fn, "dy", dy_obj, 2, false);
    auto dw = checked(fn, "dw", dw_obj, 2, true);
    auto db = checked(fn, "db", db_obj, 1, true);
    const py::ssize_t rows = x.shape(0), in = x.shape(1), out = dy.shape(1);
    expect_shape(fn, "dy", dy, {rows, out});
    expect_shape(fn, "dw", dw, {in, out});
    expect_shape(fn, "db", db, {out});
    expect_no_alias(fn, "dw", dw, {{"x", &x}, {"dy", &dy}});
    expect_no_alias(fn, "db", db, {{"x", &x}, {"dy", &dy}, {"dw", &dw}});
    for (auto* arr : {&x, &dy, &dw}) expect_int_range(fn, *arr);

    mf::GemmArgs g = gemm_args(x, true, dy, false, dw);
    g.alpha = alpha;
    g.beta = beta;
    g.b_colsum = fptr_mut(db);
    {
        py::gil_scoped_release nogil;
        mf::sgemm(g, ctx.gemm);
    }
}

}  // namespace

MF_BIND_KERNELS(bind_dense) {
    cls.def("gemm", method(&gemm), py::arg("a"), py::arg("b"), py::arg("out"), py::arg("trans_a") = false,
            py::arg("trans_b") = false, py::arg("alpha") = 1.0f, py::arg("beta") = 0.0f,
            "out = alpha * op(a) @ op(b) + beta * out; beta == 0 never reads out.");
    cls.def("linear_forward", method(&linear_forward), py::arg("x"), py::arg("w"), py::arg("b"), py::arg("out"),
            py::arg("relu") = false, "out = x @ w + b, then ReLU if relu.");
    cls.def("linear_backward_input", method(&linear_backward_input), py::arg("dy"), py::arg("w"), py::arg("y"),
            py::arg("out"), "out = (dy @ w.T) * (y > 0); y=None skips the mask.");
    cls.def("linear_weight_grad", method(&linear_weight_grad), py::arg("x"), py::arg("dy"), py::arg("dw"), py::arg("db"),
            py::arg("alpha") = 1.0f, py::arg("beta") = 0.0f,
            "dw = alpha * x.T @ dy + beta * dw and db = alpha * dy.sum(axis=0) + beta * db in one GEMM; beta == 0 "
            "never reads dw or db.");
}

}  // namespace mfpy
