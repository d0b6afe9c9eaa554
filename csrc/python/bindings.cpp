// The Python boundary. Every entry point checks dtype, shape, contiguity, writability and
// aliasing here, raises a Python exception naming the argument, and only then releases the
// GIL and calls a kernel that trusts its inputs. Nothing is ever converted or copied: an
// output converted to float32 would be a temporary the caller never sees.
#include <pybind11/pybind11.h>
#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

#include "conv/conv.hpp"
#include "gemm/gemm.hpp"
#include "python/check.hpp"
#include "python/registry.hpp"
#include "elementwise/mlp_ops.hpp"
#include "core/parallel.hpp"

namespace mf {
#if defined(__x86_64__) || defined(_M_X64)
double fma_peak_gflops_avx2(long iters);
double fma_peak_gflops_avx512(long iters);
#endif
}  // namespace mf

namespace py = pybind11;
using namespace mfpy;

std::vector<Binder>& mfpy::binders() {
    static std::vector<Binder> all;
    return all;
}

namespace {

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

py::array relu_backward(const py::object& dy_obj, const py::object& y_obj, const py::object& out_obj) {
    const char* fn = "relu_backward";
    auto dy = checked(fn, "dy", dy_obj, 2, false);
    auto y = checked(fn, "y", y_obj, 2, false);
    auto out = checked(fn, "out", out_obj, 2, true);
    expect_shape(fn, "y", y, {dy.shape(0), dy.shape(1)});
    expect_shape(fn, "out", out, {dy.shape(0), dy.shape(1)});
    // Elementwise: out may be dy itself (in place), but must not partly overlap it or touch y.
    if (out.data() != dy.data()) expect_no_alias(fn, "out", out, {{"dy", &dy}});
    expect_no_alias(fn, "out", out, {{"y", &y}});
    {
        py::gil_scoped_release nogil;
        mf::relu_backward(fptr(dy), fptr(y), fptr_mut(out), static_cast<long>(dy.size()));
    }
    return out;
}

py::array bias_grad(const py::object& dy_obj, const py::object& out_obj) {
    const char* fn = "bias_grad";
    auto dy = checked(fn, "dy", dy_obj, 2, false);
    auto out = checked(fn, "out", out_obj, 1, true);
    expect_shape(fn, "out", out, {dy.shape(1)});
    expect_no_alias(fn, "out", out, {{"dy", &dy}});
    expect_int_range(fn, dy);
    {
        py::gil_scoped_release nogil;
        mf::bias_grad(fptr(dy), static_cast<int>(dy.shape(0)), static_cast<int>(dy.shape(1)), fptr_mut(out));
    }
    return out;
}

// The loss and correct count of softmax + cross-entropy, after checking the arguments as `fn`.
mf::XentResult checked_xent(const char* fn, const py::object& logits_obj, const py::object& labels_obj,
                            const py::object& dlogits_obj, const py::array* totals) {
    auto logits = checked(fn, "logits", logits_obj, 2, false);
    auto labels = checked(fn, "labels", labels_obj, 1, false, py::dtype::of<int64_t>());
    const py::ssize_t rows = logits.shape(0), cols = logits.shape(1);
    if (rows == 0 || cols == 0) throw py::value_error(std::string(fn) + ": logits is empty, shape " + shape_str(logits));
    expect_shape(fn, "labels", labels, {rows});
    expect_int_range(fn, logits);
    const auto* lab = static_cast<const int64_t*>(labels.data());
    for (py::ssize_t i = 0; i < rows; ++i) {
        if (lab[i] < 0 || lab[i] >= cols) {
            throw py::value_error(std::string(fn) + ": labels[" + std::to_string(i) + "] = " + std::to_string(lab[i]) +
                                  " is out of range for " + std::to_string(cols) + " classes");
        }
    }
    float* d = nullptr;
    py::array dlogits;
    if (!dlogits_obj.is_none()) {
        dlogits = checked(fn, "dlogits", dlogits_obj, 2, true);
        expect_shape(fn, "dlogits", dlogits, {rows, cols});
        expect_no_alias(fn, "dlogits", dlogits, {{"logits", &logits}, {"labels", &labels}});
        if (totals) expect_no_alias(fn, "dlogits", dlogits, {{"totals", totals}});
        d = fptr_mut(dlogits);
    }
    mf::XentResult r;
    {
        py::gil_scoped_release nogil;
        r = mf::softmax_xent(fptr(logits), lab, static_cast<int>(rows), static_cast<int>(cols), d);
    }
    return r;
}

py::tuple softmax_xent(const py::object& logits_obj, const py::object& labels_obj, const py::object& dlogits_obj) {
    mf::XentResult r = checked_xent("softmax_xent", logits_obj, labels_obj, dlogits_obj, nullptr);
    return py::make_tuple(r.loss, r.correct);
}

// softmax_xent, with totals[0:2] += (loss sum, correct) and totals[2:4] = (mean loss, correct): the
// running metrics of training and evaluation stay in one float64 array that is read only when shown.
void xent_accumulate(const py::object& logits_obj, const py::object& labels_obj, const py::object& dlogits_obj,
                     const py::object& totals_obj) {
    const char* fn = "xent_accumulate";
    auto totals = checked(fn, "totals", totals_obj, 1, true, py::dtype::of<double>());
    expect_shape(fn, "totals", totals, {4});
    if (py::isinstance<py::array>(logits_obj)) {
        auto logits = py::reinterpret_borrow<py::array>(logits_obj);
        expect_no_alias(fn, "totals", totals, {{"logits", &logits}});
    }
    mf::XentResult r = checked_xent(fn, logits_obj, labels_obj, dlogits_obj, &totals);
    auto* t = static_cast<double*>(totals.mutable_data());
    const double rows = static_cast<double>(py::reinterpret_borrow<py::array>(logits_obj).shape(0));
    t[0] += r.loss * rows;
    t[1] += static_cast<double>(r.correct);
    t[2] = r.loss;
    t[3] = static_cast<double>(r.correct);
}

py::array take_rows(const py::object& src_obj, const py::object& idx_obj, const py::object& out_obj) {
    const char* fn = "take_rows";
    auto src = checked(fn, "src", src_obj, 2, false);
    auto idx = checked(fn, "idx", idx_obj, 1, false, py::dtype::of<int64_t>());
    auto out = checked(fn, "out", out_obj, 2, true);
    expect_shape(fn, "out", out, {idx.shape(0), src.shape(1)});
    expect_no_alias(fn, "out", out, {{"src", &src}, {"idx", &idx}});
    expect_int_range(fn, out);
    const auto* ix = static_cast<const int64_t*>(idx.data());
    const py::ssize_t rows = src.shape(0);
    for (py::ssize_t i = 0; i < idx.shape(0); ++i) {
        if (ix[i] < 0 || ix[i] >= rows) {
            throw py::index_error(std::string(fn) + ": idx[" + std::to_string(i) + "] = " + std::to_string(ix[i]) +
                                  " is out of bounds for " + std::to_string(rows) + " rows");
        }
    }
    {
        py::gil_scoped_release nogil;
        mf::take_rows(fptr(src), static_cast<int>(src.shape(1)), ix, static_cast<int>(idx.shape(0)), fptr_mut(out));
    }
    return out;
}

py::object peak_gflops(const mf::Context& ctx, long iters) {
    // The peak of the ISA the selected GEMM kernel uses: the number its GFLOP/s are measured against.
    if (iters < 1) throw py::value_error("peak_gflops: iters must be >= 1");
#if defined(__x86_64__) || defined(_M_X64)
    const mf::GemmKernel k = ctx.gemm;
    if (k == mf::GemmKernel::Avx2 || k == mf::GemmKernel::Avx512) {
        double gflops;
        {
            py::gil_scoped_release nogil;
            gflops = k == mf::GemmKernel::Avx512 ? mf::fma_peak_gflops_avx512(iters) : mf::fma_peak_gflops_avx2(iters);
        }
        return py::float_(gflops);
    }
#endif
    return py::none();
}

}  // namespace

PYBIND11_MODULE(_core, m) {
    m.doc() = "mnistfast C++ kernels (float32, row-major, C-contiguous). Kernels(threads, gemm_kernel) "
              "carries the settings; every kernel is one of its methods.";
    // Captured once: later calls set the calling thread's OpenMP thread count.
    static const int default_threads = mf::max_threads();
    m.def("default_threads", [] { return default_threads; }, "OpenMP's default: OMP_NUM_THREADS, else all cores.");
    m.def("has_openmp", &mf::have_openmp);
    m.def("available_gemm_kernels", [] {
        std::vector<std::string> names;
        for (auto k : mf::available_gemm_kernels()) names.emplace_back(mf::gemm_kernel_name(k));
        return names;
    });

    py::class_<Kernels> k(m, "Kernels");
    k.def(py::init([](int threads, const std::string& kernel, const std::string& conv) {
             if (threads < 1) throw py::value_error("Kernels: threads must be >= 1, got " + std::to_string(threads));
             try {
                 return Kernels{mf::Context{threads, mf::parse_gemm_kernel(kernel), mf::parse_conv_algorithm(conv.c_str())}};
             } catch (const std::invalid_argument& e) {
                 throw py::value_error(std::string("Kernels: ") + e.what());
             }
         }),
         py::arg("threads") = default_threads, py::arg("gemm_kernel") = "auto", py::arg("conv_algorithm") = "auto",
         "threads >= 1; gemm_kernel 'auto' (the best this CPU supports) or one of available_gemm_kernels(); "
         "conv_algorithm 'auto' (Winograd for 3x3 stride-1 convolutions of 16 or more channels in and out, "
         "im2col otherwise), 'im2col' or 'winograd' (every 3x3 stride-1 convolution).");
    k.def_property_readonly("threads", [](const Kernels& s) { return s.ctx.threads; });
    k.def_property_readonly("gemm_kernel", [](const Kernels& s) { return std::string(mf::gemm_kernel_name(s.ctx.gemm)); });
    k.def_property_readonly("conv_algorithm",
                            [](const Kernels& s) { return std::string(mf::conv_algorithm_name(s.ctx.conv)); });
    k.def("gemm", method(&gemm), py::arg("a"), py::arg("b"), py::arg("out"), py::arg("trans_a") = false,
          py::arg("trans_b") = false, py::arg("alpha") = 1.0f, py::arg("beta") = 0.0f,
          "out = alpha * op(a) @ op(b) + beta * out; beta == 0 never reads out.");
    k.def("linear_forward", method(&linear_forward), py::arg("x"), py::arg("w"), py::arg("b"), py::arg("out"),
          py::arg("relu") = false, "out = x @ w + b, then ReLU if relu.");
    k.def("linear_backward_input", method(&linear_backward_input), py::arg("dy"), py::arg("w"), py::arg("y"),
          py::arg("out"), "out = (dy @ w.T) * (y > 0); y=None skips the mask.");
    k.def("linear_weight_grad", method(&linear_weight_grad), py::arg("x"), py::arg("dy"), py::arg("dw"), py::arg("db"),
          py::arg("alpha") = 1.0f, py::arg("beta") = 0.0f,
          "dw = alpha * x.T @ dy + beta * dw and db = alpha * dy.sum(axis=0) + beta * db in one GEMM; beta == 0 "
          "never reads dw or db.");
    k.def("relu_backward", method(&relu_backward), py::arg("dy"), py::arg("y"), py::arg("out"),
          "out = dy * (y > 0); out may be dy.");
    k.def("bias_grad", method(&bias_grad), py::arg("dy"), py::arg("out"), "out = dy.sum(axis=0)");
    k.def("softmax_xent", method(&softmax_xent), py::arg("logits"), py::arg("labels"), py::arg("dlogits") = py::none(),
          "(mean cross-entropy, number correct); fills dlogits = (softmax - onehot) / rows unless None.");
    k.def("xent_accumulate", method(&xent_accumulate), py::arg("logits"), py::arg("labels"), py::arg("dlogits"),
          py::arg("totals"), "softmax_xent, its loss sum and correct count added to the float64 totals[0:2], the "
          "batch's mean loss and count in totals[2:4].");
    k.def("take_rows", method(&take_rows), py::arg("src"), py::arg("idx"), py::arg("out"), "out[i] = src[idx[i]]");
    k.def("peak_gflops", method(&peak_gflops), py::arg("iters") = 50'000'000L,
          "Measured float32 FMA throughput of all kernel threads in GFLOP/s (None without AVX2/FMA).");
    bind_cnn_kernels(k);
    for (Binder bind : binders()) bind(k);  // the kernels that register their own bindings
}
