#include "elementwise/augment.hpp"

#include <cmath>

#include "core/parallel.hpp"

namespace mf {

void affine_warp(const float* x, const float* params, int N, int H, int W, int C, float* out) {
    const float cx = 0.5f * static_cast<float>(W - 1), cy = 0.5f * static_cast<float>(H - 1);
    const long image = static_cast<long>(H) * W * C;
    MF_PARALLEL_FOR_IF(static_cast<long>(N) * image >= MIN_PARALLEL_ELEMS)(int n = 0; n < N; ++n) {
        const float* p = params + 6L * n;
        const float* src = x + n * image;
        float* dst = out + n * image;
        for (int y = 0; y < H; ++y) {
            for (int xo = 0; xo < W; ++xo) {
                const float u = static_cast<float>(xo) - cx, v = static_cast<float>(y) - cy;
                const float sx = p[0] * u + p[1] * v + cx + p[4];
                const float sy = p[2] * u + p[3] * v + cy + p[5];
                const float fx0 = std::floor(sx), fy0 = std::floor(sy);
                const float ax = sx - fx0, ay = sy - fy0;
                // Corners: (x0, y0) weight (1-ax)(1-ay), (x0+1, y0) ax(1-ay), (x0, y0+1) (1-ax)ay, ...
                const long x0 = static_cast<long>(fx0), y0 = static_cast<long>(fy0);
                float* o = dst + (static_cast<long>(y) * W + xo) * C;
                for (int c = 0; c < C; ++c) o[c] = 0.0f;
                for (int dy = 0; dy < 2; ++dy) {
                    const long yy = y0 + dy;
                    if (yy < 0 || yy >= H) continue;
                    const float wy = dy ? ay : 1.0f - ay;
                    for (int dx = 0; dx < 2; ++dx) {
                        const long xx = x0 + dx;
                        if (xx < 0 || xx >= W) continue;
                        const float w = wy * (dx ? ax : 1.0f - ax);
                        const float* s = src + (yy * W + xx) * C;
                        for (int c = 0; c < C; ++c) o[c] += w * s[c];
                    }
                }
            }
        }
    }
}

}  // namespace mf
