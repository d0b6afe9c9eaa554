// The machine's float32 FMA peak, measured: independent AVX2 FMA chains on every thread.
// Benchmarks report GFLOP/s against this number rather than a data-sheet one (these CPUs boost).
#include <immintrin.h>

#include <chrono>

#include "parallel.hpp"

namespace mf {

double fma_peak_gflops_avx2(long iters) {
    // 10 chains hide the 4-5 cycle FMA latency on two FMA pipes.
    constexpr int CHAINS = 10;
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
        __m256 acc[CHAINS];
        for (int c = 0; c < CHAINS; ++c) acc[c] = _mm256_set1_ps(static_cast<float>(c));
        const __m256 x = _mm256_set1_ps(0.999999f), y = _mm256_set1_ps(1e-7f);
        const auto t0 = std::chrono::steady_clock::now();
        for (long i = 0; i < iters; ++i)
            for (int c = 0; c < CHAINS; ++c) acc[c] = _mm256_fmadd_ps(acc[c], x, y);
        const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
#ifdef MNISTFAST_HAVE_OPENMP
#pragma omp critical
#endif
        seconds = dt > seconds ? dt : seconds;
        float lanes[8];
        for (int c = 0; c < CHAINS; ++c) {
            _mm256_storeu_ps(lanes, acc[c]);
            sink += lanes[0];
        }
    }
    volatile float keep = sink;
    (void)keep;
    return 2.0 * 8 * CHAINS * static_cast<double>(iters) * threads / seconds / 1e9;
}

}  // namespace mf
