// The machine's float32 FMA peak, measured: independent FMA chains on every thread.
// Benchmarks report GFLOP/s against this number rather than a data-sheet one (these CPUs boost).
// Included by one file per ISA (peak_avx2.cpp, peak_avx512.cpp), each compiled with its flags;
// everything here has internal linkage so the two copies never meet in the linker.
#pragma once

#include <chrono>

#include "core/parallel.hpp"

namespace mf {
namespace {

// Vec: the register type; fma(a, x, y) = a * x + y; lane0(v): one lane, to keep the result live.
template <class Vec, int LANES, class Fma, class Set1, class Lane0>
double fma_peak_gflops(long iters, Fma fma, Set1 set1, Lane0 lane0) {
    // 12 chains hide the 4-cycle FMA latency on two FMA pipes.
    constexpr int CHAINS = 12;
    double seconds = 0.0;
    int threads = 1;
    float sink = 0.0f;
#ifdef MNISTFAST_HAVE_OPENMP
#pragma omp parallel reduction(+ : sink)
#endif
    {
#ifdef MNISTFAST_HAVE_OPENMP
#pragma omp single
        threads = omp_get_num_threads();
#pragma omp barrier
#endif
        Vec acc[CHAINS];
        for (int c = 0; c < CHAINS; ++c) acc[c] = set1(static_cast<float>(c));
        const Vec x = set1(0.999999f), y = set1(1e-7f);
        const auto t0 = std::chrono::steady_clock::now();
        for (long i = 0; i < iters; ++i)
            for (int c = 0; c < CHAINS; ++c) acc[c] = fma(acc[c], x, y);
        const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
#ifdef MNISTFAST_HAVE_OPENMP
#pragma omp critical
#endif
        seconds = dt > seconds ? dt : seconds;
        for (int c = 0; c < CHAINS; ++c) sink += lane0(acc[c]);
    }
    volatile float keep = sink;
    (void)keep;
    return 2.0 * LANES * CHAINS * static_cast<double>(iters) * threads / seconds / 1e9;
}

}  // namespace
}  // namespace mf
