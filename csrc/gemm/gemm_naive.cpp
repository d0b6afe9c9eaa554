#include <vector>

#include "gemm/gemm.hpp"
#include "core/parallel.hpp"

namespace mf {

void sgemm_naive(const GemmArgs& g) {
    const auto a = [&](int i, int p) { return g.trans_a ? g.A[p * g.lda + i] : g.A[i * g.lda + p]; };
    const auto b = [&](int p, int j) { return g.trans_b ? g.B[j * g.ldb + p] : g.B[p * g.ldb + j]; };

    // Rows are independent and each is summed in a fixed order over p: the result does not
    // depend on the thread count.
    MF_PARALLEL_FOR(int i = 0; i < g.M; ++i) {
        std::vector<float> acc(static_cast<size_t>(g.N), 0.0f);
        for (int p = 0; p < g.K; ++p) {
            const float aip = a(i, p);
            for (int j = 0; j < g.N; ++j) acc[j] += aip * b(p, j);
        }
        float* crow = g.C + i * g.ldc;
        for (int j = 0; j < g.N; ++j)
            crow[j] = g.beta == 0.0f ? g.alpha * acc[j] : g.alpha * acc[j] + g.beta * crow[j];
        apply_epilogue_row(g.ep, i, 0, g.N, crow);
    }
    if (g.b_colsum) b_column_sums(g);
}

void b_column_sums(const GemmArgs& g) {
    for (int j = 0; j < g.N; ++j) {
        float sum = 0.0f;
        for (int p = 0; p < g.K; ++p) sum += g.trans_b ? g.B[j * g.ldb + p] : g.B[p * g.ldb + j];
        g.b_colsum[j] = g.beta == 0.0f ? g.alpha * sum : g.alpha * sum + g.beta * g.b_colsum[j];
    }
}

}  // namespace mf
