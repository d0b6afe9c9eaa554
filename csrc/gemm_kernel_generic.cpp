// Portable micro-kernel: plain C++ the compiler vectorizes for whatever the baseline ISA is.
#include "gemm_kernel.hpp"

namespace mf {

void micro_kernel_generic(int kc, const float* a, const float* b, const TileStore& st) {
    float acc[MR * NR] = {};
    for (int p = 0; p < kc; ++p, a += MR, b += NR)
        for (int r = 0; r < MR; ++r)
            for (int c = 0; c < NR; ++c) acc[r * NR + c] += a[r] * b[c];
    store_tile_scalar(acc, st);
}

}  // namespace mf
