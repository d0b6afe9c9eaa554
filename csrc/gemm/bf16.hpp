// bfloat16: the upper 16 bits of a float32 (8 exponent bits, 8 significant bits). Rounding is to
// nearest, ties to even; a NaN stays a (quiet) NaN rather than rounding to Inf; a denormal becomes
// a zero of its sign, because VDPBF16PS reads denormal operands as zero and every bf16 path (this
// rounding, the portable kernel, the NumPy reference in mnistfast/bf16.py) must agree with it.
#pragma once

#include <cstdint>
#include <cstring>

namespace mf {

inline uint16_t to_bf16(float x) {
    uint32_t u;
    std::memcpy(&u, &x, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40u);
    if ((u & 0x7f800000u) == 0) return static_cast<uint16_t>((u >> 16) & 0x8000u);  // zero or denormal
    u += 0x7fffu + ((u >> 16) & 1u);
    return static_cast<uint16_t>(u >> 16);
}

inline float from_bf16(uint16_t h) {
    const uint32_t u = static_cast<uint32_t>(h) << 16;
    float x;
    std::memcpy(&x, &u, sizeof x);
    return x;
}

}  // namespace mf
