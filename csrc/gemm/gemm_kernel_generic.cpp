// Portable micro-kernel: plain C++ the compiler vectorizes for whatever the baseline ISA is.
#include "gemm/gemm_kernel.hpp"

namespace mf {

void micro_kernel_generic(int kc, const float* a, std::ptrdiff_t a_rs, std::ptrdiff_t a_cs, const float* b,
                          std::ptrdiff_t b_step, const TileStore& st) {
    constexpr int MR = MR_YMM, NR = NR_YMM;
    float acc[MR * NR] = {};
    for (int p = 0; p < kc; ++p, a += a_cs, b += b_step)
        for (int r = 0; r < MR; ++r)
            for (int c = 0; c < NR; ++c) acc[r * NR + c] += a[r * a_rs] * b[c];
    store_tile_scalar<NR>(acc, st);
}

}  // namespace mf
