// The machine's peak multiply-add throughput in one instruction set, measured: independent chains
// of the instruction on every thread. Benchmarks report GFLOP/s against this number rather than a
// data-sheet one (these CPUs boost, and a double-pumped AVX-512 unit has the same peak as AVX2).
//
// The work is cut into many short repetitions, all threads starting each one together, and the
// fastest repetition is the answer: a repetition is shorter than a scheduler time slice, so under
// load some run with every thread on a core, and the slow first ones (clocks and the wide units
// waking up) do not count.
// Included by one file per ISA (peak_avx2.cpp, peak_avx512.cpp, peak_avx512bf16.cpp), each compiled
// with its flags; everything here has internal linkage so the copies never meet in the linker.
#pragma once

#include <algorithm>
#include <chrono>
#include <vector>

#include "core/parallel.hpp"

namespace mf {
namespace {

// Vec: the register type; op(acc, x, y) = acc + x * y, MACS multiply-adds per instruction;
// init(c): chain c's start value; lane0(v): one lane, to keep the result live.
template <class Vec, int MACS, class Op, class Init, class Lane0>
double peak_gflops(long iters, Vec x, Vec y, Op op, Init init, Lane0 lane0) {
    constexpr int CHAINS = 12;            // hides a 4-cycle latency on up to three pipes
    constexpr long REP_ITERS = 1L << 16;  // 786K instructions: ~0.1-0.3 ms at 3-4 GHz
    const long reps = std::max(1L, iters / REP_ITERS);
    std::vector<double> slowest(static_cast<size_t>(reps), 0.0);  // per repetition, its slowest thread
    int threads = 1;
    float sink = 0.0f;
#ifdef MNISTFAST_HAVE_OPENMP
#pragma omp parallel reduction(+ : sink)
#endif
    {
#ifdef MNISTFAST_HAVE_OPENMP
#pragma omp single
        threads = omp_get_num_threads();
#endif
        Vec acc[CHAINS];
        for (int c = 0; c < CHAINS; ++c) acc[c] = init(c);
        for (long rep = 0; rep < reps; ++rep) {
#ifdef MNISTFAST_HAVE_OPENMP
#pragma omp barrier
#endif
            const auto t0 = std::chrono::steady_clock::now();
            for (long i = 0; i < REP_ITERS; ++i)
                for (int c = 0; c < CHAINS; ++c) acc[c] = op(acc[c], x, y);
            const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
#ifdef MNISTFAST_HAVE_OPENMP
#pragma omp critical
#endif
            slowest[rep] = std::max(slowest[rep], dt);
        }
        for (int c = 0; c < CHAINS; ++c) sink += lane0(acc[c]);
    }
    volatile float keep = sink;
    (void)keep;
    const double best = *std::min_element(slowest.begin(), slowest.end());
    return 2.0 * MACS * CHAINS * static_cast<double>(REP_ITERS) * threads / best / 1e9;
}

}  // namespace
}  // namespace mf
