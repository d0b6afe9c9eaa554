// The portable bf16 pair packer (pack_bf16.hpp): to_bf16 on one value at a time.
#include <cstdint>

#include "gemm/bf16.hpp"
#include "gemm/pack_bf16.hpp"

namespace mf {

void pack_pairs_generic(const float* src, std::ptrdiff_t k_stride, std::ptrdiff_t x_stride, int kc, int n, int W,
                        float* dst_slots, float* sums) {
    uint16_t* dst = reinterpret_cast<uint16_t*>(dst_slots);
    for (int k = 0; k < 2 * ((kc + 1) / 2); ++k) {
        uint16_t* d = dst + 2 * (k / 2) * W + k % 2;
        const int valid = k < kc ? n : 0;
        for (int x = 0; x < valid; ++x) {
            const float v = src[k * k_stride + x * x_stride];
            if (sums) sums[x] += v;
            d[2 * x] = to_bf16(v);
        }
        for (int x = valid; x < W; ++x) d[2 * x] = 0;
    }
}

}  // namespace mf
