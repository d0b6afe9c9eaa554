// Portable micro-kernel: plain C++ the compiler vectorizes for whatever the baseline ISA is.
#include <cstdint>

#include "gemm/bf16.hpp"
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

// The portable bf16 kernel: slivers of bf16 pairs (gemm_blocked.cpp), products summed in float32.
// Slow (every value is widened as it is read); it is the reference the instruction-set kernels
// are tested against and what runs bf16 where the CPU has no bf16 instructions.
void micro_kernel_generic_bf16(int slots, const float* a, std::ptrdiff_t a_rs, std::ptrdiff_t a_cs, const float* b,
                               std::ptrdiff_t b_step, const TileStore& st) {
    constexpr int MR = MR_YMM, NR = NR_YMM;
    float acc[MR * NR] = {};
    const uint16_t* a16 = reinterpret_cast<const uint16_t*>(a);
    const uint16_t* b16 = reinterpret_cast<const uint16_t*>(b);
    for (int p = 0; p < slots; ++p, a16 += 2 * a_cs, b16 += 2 * b_step) {
        for (int r = 0; r < MR; ++r) {
            const float a0 = from_bf16(a16[2 * r * a_rs]), a1 = from_bf16(a16[2 * r * a_rs + 1]);
            for (int c = 0; c < NR; ++c)
                acc[r * NR + c] += a0 * from_bf16(b16[2 * c]) + a1 * from_bf16(b16[2 * c + 1]);
        }
    }
    store_tile_scalar<NR>(acc, st);
}

}  // namespace mf
