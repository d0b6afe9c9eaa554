// Per-image affine warps with bilinear sampling: the data augmentation kernel.
#pragma once

namespace mf {

// out[n, y, x, c] = bilinear sample of x_in[n] at the source point of output pixel (x, y):
//   sx = A00 (x - cx) + A01 (y - cy) + cx + tx,   sy = A10 (x - cx) + A11 (y - cy) + cy + ty
// with (cx, cy) the image centre and params[n] = {A00, A01, A10, A11, tx, ty} (the inverse map,
// so every output pixel has exactly one source). Pixels sampled outside the image read 0.
void affine_warp(const float* x, const float* params, int N, int H, int W, int C, float* out);

}  // namespace mf
