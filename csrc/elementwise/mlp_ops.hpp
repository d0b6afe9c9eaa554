// The elementwise and reduction kernels around the GEMMs of an MLP.
// All row-major float32, contiguous; the bindings have checked every shape.
#pragma once

#include <cstdint>

namespace mf {

// dx = dy where y > 0, else 0 (y is the ReLU output of the forward pass). dx may alias dy.
void relu_backward(const float* dy, const float* y, float* dx, long n);

// db[j] = sum_i dy[i, j]
void bias_grad(const float* dy, int rows, int cols, float* db);

struct XentResult {
    double loss;  // mean over the rows of -log softmax(z)[label]
    long correct;  // rows whose argmax equals the label
};

// Softmax + cross-entropy in one pass per row. If dlogits is not null it receives the
// gradient of the mean loss: (softmax(z) - onehot(label)) / rows.
XentResult softmax_xent(const float* logits, const int64_t* labels, int rows, int cols, float* dlogits);

// dst[i, :] = src[idx[i], :] for i < n: gathering a shuffled mini-batch.
void take_rows(const float* src, int cols, const int64_t* idx, int n, float* dst);

}  // namespace mf
