// Portable micro-kernel: plain C++ the compiler vectorizes for whatever the baseline ISA is.
#include "gemm_kernel.hpp"

namespace mf {

void micro_kernel_generic(int kc, const float* a, std::ptrdiff_t a_step, const float* b, std::ptrdiff_t b_step,
                          const TileStore& st) {
    float acc[MR * NR] = {};
    for (int p = 0; p < kc; ++p, a += a_step, b += b_step)
        for (int r = 0; r < MR; ++r)
            for (int c = 0; c < NR; ++c) acc[r * NR + c] += a[r] * b[c];
    store_tile_scalar(acc, st);
}

}  // namespace mf
