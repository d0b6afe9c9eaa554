#include "layers.hpp"

#include <cmath>
#include <vector>

#include "parallel.hpp"

namespace mf {

void relu_backward(const float* dy, const float* y, float* dx, long n) {
    MF_PARALLEL_FOR(long k = 0; k < n; ++k) dx[k] = y[k] > 0.0f ? dy[k] : 0.0f;
}

void bias_grad(const float* dy, int rows, int cols, float* db) {
    // Each column is owned by one thread and summed top to bottom: deterministic.
    MF_PARALLEL_FOR(int j = 0; j < cols; ++j) {
        float s = 0.0f;
        for (int i = 0; i < rows; ++i) s += dy[static_cast<long>(i) * cols + j];
        db[j] = s;
    }
}

XentResult softmax_xent(const float* logits, const int64_t* labels, int rows, int cols, float* dlogits) {
    std::vector<double> row_loss(static_cast<size_t>(rows));
    std::vector<char> row_hit(static_cast<size_t>(rows));
    const float inv_rows = 1.0f / static_cast<float>(rows);

    MF_PARALLEL_FOR(int i = 0; i < rows; ++i) {
        const float* z = logits + static_cast<long>(i) * cols;
        int argmax = 0;
        for (int j = 1; j < cols; ++j)
            if (z[j] > z[argmax]) argmax = j;
        const float zmax = z[argmax];
        // log-sum-exp shifted by the max: exp never overflows, the largest term is exp(0) = 1.
        float sum = 0.0f;
        for (int j = 0; j < cols; ++j) sum += std::exp(z[j] - zmax);
        const int label = static_cast<int>(labels[i]);
        row_loss[i] = static_cast<double>(std::log(sum) - (z[label] - zmax));
        row_hit[i] = argmax == label;
        if (dlogits) {
            float* d = dlogits + static_cast<long>(i) * cols;
            const float scale = inv_rows / sum;
            for (int j = 0; j < cols; ++j) d[j] = std::exp(z[j] - zmax) * scale;
            d[label] -= inv_rows;
        }
    }
    // Summed serially so the loss does not depend on the thread count.
    XentResult r{0.0, 0};
    for (int i = 0; i < rows; ++i) {
        r.loss += row_loss[i];
        r.correct += row_hit[i];
    }
    r.loss /= rows;
    return r;
}

void sgd_update(float* p, const float* g, long n, float lr) {
    MF_PARALLEL_FOR(long k = 0; k < n; ++k) p[k] -= lr * g[k];
}

}  // namespace mf
