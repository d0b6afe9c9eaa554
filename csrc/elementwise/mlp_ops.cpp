#include "elementwise/mlp_ops.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "core/parallel.hpp"

namespace mf {

void relu_backward(const float* dy, const float* y, float* dx, long n) {
    MF_PARALLEL_FOR_IF(n >= MIN_PARALLEL_ELEMS)(long k = 0; k < n; ++k) dx[k] = y[k] > 0.0f ? dy[k] : 0.0f;
}

void bias_grad(const float* dy, int rows, int cols, float* db) {
    // Rows outer so the inner loop runs along memory and vectorizes; threads own column blocks.
    // Four rows go into four partial sums (a fixed order, combined at the end), so consecutive rows
    // do not wait on each other's additions. The result is independent of the thread count.
    constexpr int COL_BLOCK = 64, LANES = 4;
    const int blocks = (cols + COL_BLOCK - 1) / COL_BLOCK;
    MF_PARALLEL_FOR_IF(static_cast<long>(rows) * cols >= MIN_PARALLEL_ELEMS && blocks > 1)(int blk = 0; blk < blocks; ++blk) {
        const int j0 = blk * COL_BLOCK, w = std::min(cols, j0 + COL_BLOCK) - j0;
        float acc[LANES][COL_BLOCK] = {};
        int i = 0;
        for (; i + LANES <= rows; i += LANES) {
            for (int l = 0; l < LANES; ++l) {
                const float* __restrict row = dy + static_cast<long>(i + l) * cols + j0;
                for (int j = 0; j < w; ++j) acc[l][j] += row[j];
            }
        }
        for (; i < rows; ++i) {
            const float* __restrict row = dy + static_cast<long>(i) * cols + j0;
            for (int j = 0; j < w; ++j) acc[0][j] += row[j];
        }
        for (int j = 0; j < w; ++j) db[j0 + j] = (acc[0][j] + acc[1][j]) + (acc[2][j] + acc[3][j]);
    }
}

namespace {

struct RowXent {
    double loss;
    bool hit;
};

// One row: max-shifted log-sum-exp, each exp computed once (kept in d when a gradient is wanted).
inline RowXent xent_row(const float* z, int64_t label64, int cols, float inv_rows, float* d) {
    int argmax = 0;
    for (int j = 1; j < cols; ++j)
        if (z[j] > z[argmax]) argmax = j;
    const float zmax = z[argmax];
    const int label = static_cast<int>(label64);
    float sum = 0.0f;
    if (d) {
        for (int j = 0; j < cols; ++j) sum += (d[j] = std::exp(z[j] - zmax));
        const float scale = inv_rows / sum;
        for (int j = 0; j < cols; ++j) d[j] *= scale;
        d[label] -= inv_rows;
    } else {
        for (int j = 0; j < cols; ++j) sum += std::exp(z[j] - zmax);
    }
    return {static_cast<double>(std::log(sum) - (z[label] - zmax)), argmax == label};
}

}  // namespace

XentResult softmax_xent(const float* logits, const int64_t* labels, int rows, int cols, float* dlogits) {
    const float inv_rows = 1.0f / static_cast<float>(rows);
    const auto row = [&](int i) {
        return xent_row(logits + static_cast<long>(i) * cols, labels[i], cols, inv_rows,
                        dlogits ? dlogits + static_cast<long>(i) * cols : nullptr);
    };
    XentResult r{0.0, 0};
    if (static_cast<long>(rows) * cols < MIN_PARALLEL_ELEMS) {
        for (int i = 0; i < rows; ++i) {
            const RowXent x = row(i);
            r.loss += x.loss;
            r.correct += x.hit;
        }
    } else {
        std::vector<RowXent> per_row(static_cast<size_t>(rows));
        MF_PARALLEL_FOR(int i = 0; i < rows; ++i) per_row[i] = row(i);
        // Summed in row order, as in the serial branch: the loss does not depend on threads.
        for (const RowXent& x : per_row) {
            r.loss += x.loss;
            r.correct += x.hit;
        }
    }
    r.loss /= rows;
    return r;
}

void take_rows(const float* src, int cols, const int64_t* idx, int n, float* dst) {
    const size_t row_bytes = static_cast<size_t>(cols) * sizeof(float);
    MF_PARALLEL_FOR_IF(static_cast<long>(n) * cols >= MIN_PARALLEL_ELEMS)(int i = 0; i < n; ++i)
        std::memcpy(dst + static_cast<long>(i) * cols, src + idx[i] * cols, row_bytes);
}

}  // namespace mf
