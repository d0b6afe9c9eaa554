// sgemm: runs the micro-kernel it is given; best_gemm_kernel picks one from what the CPU reports.
#include "gemm/gemm.hpp"

#include <stdexcept>
#include <string>

#include "gemm/gemm_kernel.hpp"

namespace mf {

namespace {

// Cache blocking per tile shape: {MC, KC, NC}. 6 x 16 (AVX2 and generic): MC x KC block of A in
// L2 (144 KiB), KC x NR sliver of B in L1 (16 KiB), KC x NC panel of B in L3. 12 x 32 (AVX-512):
// one K block up to KC = 800, so an MNIST image's 784 inputs are one pass, with the A block
// (450 KiB) and the B sliver (100 KiB) both in L2: the AVX-512 cores have 1-2 MiB of it, and
// measured against KC = 256 (B sliver in L1, 784 as 4 x 196) a single pass saves three C
// round trips per tile (128x128x784: 251 -> 267 GFLOP/s hot, the 784-128-64-10 epoch 6 %
// faster, the basic CNN 6 %; 1024^3 and 2048^3 unchanged or better). Overridable only to sweep
// a new machine.
#ifndef MNISTFAST_BLOCKING_YMM
#define MNISTFAST_BLOCKING_YMM {144, 256, 2048}
#endif
#ifndef MNISTFAST_BLOCKING_ZMM
#define MNISTFAST_BLOCKING_ZMM {144, 800, 2048}
#endif
constexpr Blocking BLOCKING_YMM MNISTFAST_BLOCKING_YMM;
[[maybe_unused]] constexpr Blocking BLOCKING_ZMM MNISTFAST_BLOCKING_ZMM;

bool cpu_supports(const char* what) {
#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    if (std::string(what) == "avx2") return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if (std::string(what) == "avx512") return __builtin_cpu_supports("avx512f");
#endif
    (void)what;
    return false;
}

}  // namespace

GemmKernel best_gemm_kernel() {
    if (cpu_supports("avx512")) return GemmKernel::Avx512;
    return cpu_supports("avx2") ? GemmKernel::Avx2 : GemmKernel::Generic;
}

const char* gemm_kernel_name(GemmKernel k) {
    switch (k) {
        case GemmKernel::Naive: return "naive";
        case GemmKernel::Generic: return "generic";
        case GemmKernel::Avx2: return "avx2";
        case GemmKernel::Avx512: return "avx512";
    }
    return "?";
}

std::vector<GemmKernel> available_gemm_kernels() {
    std::vector<GemmKernel> ks{GemmKernel::Naive, GemmKernel::Generic};
    if (cpu_supports("avx2")) ks.push_back(GemmKernel::Avx2);
    if (cpu_supports("avx512")) ks.push_back(GemmKernel::Avx512);
    return ks;
}

GemmKernel parse_gemm_kernel(const std::string& name) {
    if (name == "auto") return best_gemm_kernel();
    for (GemmKernel k : available_gemm_kernels()) {
        if (name == gemm_kernel_name(k)) return k;
    }
    throw std::invalid_argument("gemm kernel '" + name + "' is not available on this CPU");
}

void sgemm(const GemmArgs& g, GemmKernel kernel) {
    switch (kernel) {
        case GemmKernel::Naive: return sgemm_naive(g);
        case GemmKernel::Generic: break;
#if defined(__x86_64__) || defined(_M_X64)
        case GemmKernel::Avx2: return sgemm_blocked<MR_YMM, NR_YMM>(g, micro_kernel_avx2, BLOCKING_YMM);
        case GemmKernel::Avx512: return sgemm_blocked<MR_ZMM, NR_ZMM>(g, micro_kernel_avx512, BLOCKING_ZMM);
#else
        default: break;
#endif
    }
    sgemm_blocked<MR_YMM, NR_YMM>(g, micro_kernel_generic, BLOCKING_YMM);
}

}  // namespace mf
