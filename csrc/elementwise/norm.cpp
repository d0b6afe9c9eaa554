#include "elementwise/norm.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/parallel.hpp"
#include "python/registry.hpp"

namespace mf {

namespace {

// Rows are summed in fixed chunks of this many, each chunk in double, then the chunks in order:
// the result is the same for every thread count.
constexpr int ROW_CHUNK = 256;

// sums[j][c] = sum over rows of term(row, c), for J terms at once, in double.
template <int J, typename Term>
void column_sums(int R, int C, Term term, double (*sums)[J] /* [C][J] */) {
    const int chunks = (R + ROW_CHUNK - 1) / ROW_CHUNK;
    std::vector<double> part(static_cast<size_t>(chunks) * C * J, 0.0);
    MF_PARALLEL_FOR_IF(static_cast<long>(R) * C >= MIN_PARALLEL_ELEMS)(int k = 0; k < chunks; ++k) {
        double* p = part.data() + static_cast<size_t>(k) * C * J;
        const int r1 = std::min(R, (k + 1) * ROW_CHUNK);
        for (int r = k * ROW_CHUNK; r < r1; ++r)
            for (int c = 0; c < C; ++c) {
                double t[J];
                term(r, c, t);
                for (int j = 0; j < J; ++j) p[c * J + j] += t[j];
            }
    }
    for (int c = 0; c < C; ++c)
        for (int j = 0; j < J; ++j) sums[c][j] = 0.0;
    for (int k = 0; k < chunks; ++k)
        for (int c = 0; c < C; ++c)
            for (int j = 0; j < J; ++j) sums[c][j] += part[(static_cast<size_t>(k) * C + c) * J + j];
}

// y[r, c] = x[r, c] * scale[c] + shift[c]
void affine_rows(const float* x, const float* scale, const float* shift, int R, int C, float* y) {
    MF_PARALLEL_FOR_IF(static_cast<long>(R) * C >= MIN_PARALLEL_ELEMS)(int r = 0; r < R; ++r) {
        const float* xr = x + static_cast<long>(r) * C;
        float* yr = y + static_cast<long>(r) * C;
        for (int c = 0; c < C; ++c) yr[c] = xr[c] * scale[c] + shift[c];
    }
}

}  // namespace

void batchnorm_forward_train(const float* x, const float* gamma, const float* beta, const BatchNormArgs& a, float* y,
                             float* save_mean, float* save_invstd, float* running_mean, float* running_var) {
    const int R = a.R, C = a.C;
    std::vector<double> mean_sum(C), var_sum(C);
    column_sums<1>(R, C, [&](int r, int c, double* t) { t[0] = x[static_cast<long>(r) * C + c]; },
                   reinterpret_cast<double(*)[1]>(mean_sum.data()));
    std::vector<float> mean(C);
    for (int c = 0; c < C; ++c) mean[c] = static_cast<float>(mean_sum[c] / R);
    // Second pass about the mean: no cancellation for inputs far from zero.
    column_sums<1>(R, C, [&](int r, int c, double* t) {
        const double d = static_cast<double>(x[static_cast<long>(r) * C + c]) - mean[c];
        t[0] = d * d;
    }, reinterpret_cast<double(*)[1]>(var_sum.data()));
    std::vector<float> scale(C), shift(C);
    for (int c = 0; c < C; ++c) {
        const double var = var_sum[c] / R;
        const float invstd = static_cast<float>(1.0 / std::sqrt(var + a.eps));
        save_mean[c] = mean[c];
        save_invstd[c] = invstd;
        scale[c] = gamma[c] * invstd;
        shift[c] = beta[c] - mean[c] * scale[c];
        const double unbiased = R > 1 ? var_sum[c] / (R - 1) : var;
        running_mean[c] = (1.0f - a.momentum) * running_mean[c] + a.momentum * mean[c];
        running_var[c] = (1.0f - a.momentum) * running_var[c] + a.momentum * static_cast<float>(unbiased);
    }
    affine_rows(x, scale.data(), shift.data(), R, C, y);
}

void batchnorm_forward_infer(const float* x, const float* gamma, const float* beta, const float* running_mean,
                             const float* running_var, const BatchNormArgs& a, float* y) {
    std::vector<float> scale(a.C), shift(a.C);
    for (int c = 0; c < a.C; ++c) {
        scale[c] = gamma[c] / std::sqrt(running_var[c] + a.eps);
        shift[c] = beta[c] - running_mean[c] * scale[c];
    }
    affine_rows(x, scale.data(), shift.data(), a.R, a.C, y);
}

void batchnorm_backward(const float* dy, const float* x, const float* gamma, const float* save_mean,
                        const float* save_invstd, const BatchNormArgs& a, float* dx, float* dgamma, float* dbeta) {
    const int R = a.R, C = a.C;
    std::vector<double> sums(static_cast<size_t>(C) * 2);
    column_sums<2>(R, C, [&](int r, int c, double* t) {
        const long k = static_cast<long>(r) * C + c;
        const double xhat = (static_cast<double>(x[k]) - save_mean[c]) * save_invstd[c];
        t[0] = dy[k] * xhat;
        t[1] = dy[k];
    }, reinterpret_cast<double(*)[2]>(sums.data()));
    std::vector<float> k_dy(C), k_xhat(C), k_const(C);  // per-channel coefficients of dx
    for (int c = 0; c < C; ++c) {
        const double dg = sums[2 * c], dbt = sums[2 * c + 1];
        dgamma[c] = static_cast<float>(dg);
        dbeta[c] = static_cast<float>(dbt);
        // dx = g*s*dy - g*s*dbeta/R - g*s*(x - mean)*s*dgamma/R = A*dy + B*(x - mean) + D.
        const double gs = static_cast<double>(gamma[c]) * save_invstd[c];
        k_dy[c] = static_cast<float>(gs);
        k_xhat[c] = static_cast<float>(-gs * save_invstd[c] * dg / R);
        k_const[c] = static_cast<float>(-gs * dbt / R);
    }
    MF_PARALLEL_FOR_IF(static_cast<long>(R) * C >= MIN_PARALLEL_ELEMS)(int r = 0; r < R; ++r) {
        const long o = static_cast<long>(r) * C;
        for (int c = 0; c < C; ++c) dx[o + c] = k_dy[c] * dy[o + c] + k_xhat[c] * (x[o + c] - save_mean[c]) + k_const[c];
    }
}

}  // namespace mf

// -- the Python boundary: these kernels' checked bindings (python/registry.hpp) ------------------
namespace mfpy {
namespace {

using std::to_string;

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

}  // namespace

MF_BIND_KERNELS(bind_batchnorm) {
    cls.def("batchnorm_forward_train", method(&batchnorm_forward_train), py::arg("x"), py::arg("gamma"), py::arg("beta"),
            py::arg("y"), py::arg("save_mean"), py::arg("save_invstd"), py::arg("running_mean"), py::arg("running_var"),
            py::arg("eps"), py::arg("momentum"));
    cls.def("batchnorm_forward_infer", method(&batchnorm_forward_infer), py::arg("x"), py::arg("gamma"), py::arg("beta"),
            py::arg("running_mean"), py::arg("running_var"), py::arg("y"), py::arg("eps"));
    cls.def("batchnorm_backward", method(&batchnorm_backward), py::arg("dy"), py::arg("x"), py::arg("gamma"),
            py::arg("save_mean"), py::arg("save_invstd"), py::arg("dx"), py::arg("dgamma"), py::arg("dbeta"));
}

}  // namespace mfpy
