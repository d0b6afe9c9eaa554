// sgemm: picks the micro-kernel once, at run time, from what the CPU reports.
#include "gemm.hpp"

#include <stdexcept>
#include <string>

#include "gemm_kernel.hpp"

namespace mf {

void sgemm_blocked(const GemmArgs& g, MicroKernel kernel);

namespace {

bool cpu_has_avx2_fma() {
#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return false;
#endif
}

// Each calling thread carries its own choice: the Python backend object that issues a call sets it
// first (see settings.hpp), so two backends with different kernels never disturb each other.
thread_local GemmKernel tl_kernel = best_gemm_kernel();

}  // namespace

GemmKernel best_gemm_kernel() { return cpu_has_avx2_fma() ? GemmKernel::Avx2 : GemmKernel::Generic; }

const char* gemm_kernel_name(GemmKernel k) {
    switch (k) {
        case GemmKernel::Naive: return "naive";
        case GemmKernel::Generic: return "generic";
        case GemmKernel::Avx2: return "avx2";
    }
    return "?";
}

std::vector<GemmKernel> available_gemm_kernels() {
    std::vector<GemmKernel> ks{GemmKernel::Naive, GemmKernel::Generic};
    if (cpu_has_avx2_fma()) ks.push_back(GemmKernel::Avx2);
    return ks;
}

GemmKernel gemm_kernel() { return tl_kernel; }

void use_gemm_kernel(GemmKernel k) { tl_kernel = k; }

GemmKernel parse_gemm_kernel(const std::string& name) {
    if (name == "auto") return best_gemm_kernel();
    for (GemmKernel k : available_gemm_kernels()) {
        if (name == gemm_kernel_name(k)) return k;
    }
    throw std::invalid_argument("gemm kernel '" + name + "' is not available on this CPU");
}

void sgemm(const GemmArgs& g) {
    switch (tl_kernel) {
        case GemmKernel::Naive: return sgemm_naive(g);
        case GemmKernel::Generic: return sgemm_blocked(g, micro_kernel_generic);
        case GemmKernel::Avx2:
#if defined(__x86_64__) || defined(_M_X64)
            return sgemm_blocked(g, micro_kernel_avx2);
#endif
            break;
    }
    sgemm_blocked(g, micro_kernel_generic);
}

}  // namespace mf
