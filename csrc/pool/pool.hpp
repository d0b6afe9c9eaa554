// Pooling on channels-last images.
#pragma once

#include <cstdint>

namespace mf {

// Max over non-overlapping P x P windows (stride P, trailing rows/columns that do not fill a window
// are dropped): x (N, H, W, C) -> out (N, H/P, W/P, C). argmax[o] is the offset, within its image,
// of the input element that won (the first one on ties), for the backward pass.
void maxpool_forward(const float* x, int N, int H, int W, int C, int P, float* out, int32_t* argmax);

// dx = 0, then dx[argmax[o]] = dy[o]; returns how many argmax entries lie outside their image (those
// are skipped; the caller reports them: argmax may come from a user). With relu_mask the gradient is also zeroed where out <= 0:
// the ReLU derivative of the layer below, applied on the pooled tensor, which is P*P times smaller
// (max and ReLU commute, so out > 0 exactly where the winning input is > 0).
long maxpool_backward(const float* dy, const int32_t* argmax, const float* out, bool relu_mask, int N, int H, int W,
                      int C, int P, float* dx);

// Mean over the HW positions of each channel: x (N, HW, C) -> out (N, C), and its gradient.
void global_avgpool_forward(const float* x, int N, int HW, int C, float* out);
void global_avgpool_backward(const float* dy, int N, int HW, int C, float* dx);

}  // namespace mf
