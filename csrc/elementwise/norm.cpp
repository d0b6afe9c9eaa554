#include "elementwise/norm.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/parallel.hpp"

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
