// OpenMP is optional: without it every loop below runs on one thread.
#pragma once

#ifdef MNISTFAST_HAVE_OPENMP
#include <omp.h>
#define MF_PRAGMA(x) _Pragma(#x)
#define MF_PARALLEL_FOR MF_PRAGMA(omp parallel for schedule(static)) for
// Only goes parallel when `cond` holds: waking a second thread costs microseconds.
#define MF_PARALLEL_FOR_IF(cond) MF_PRAGMA(omp parallel for schedule(static) if (cond)) for
#define MF_PARALLEL_FOR_REDUCE_IF(cond, sum) MF_PRAGMA(omp parallel for schedule(static) if (cond) reduction(+ : sum)) for
#else
#define MF_PARALLEL_FOR for
#define MF_PARALLEL_FOR_IF(cond) for
#define MF_PARALLEL_FOR_REDUCE_IF(cond, sum) for
#endif

namespace mf {

// Elementwise work below this many elements runs on the calling thread alone.
constexpr long MIN_PARALLEL_ELEMS = 1L << 16;

inline int max_threads() {
#ifdef MNISTFAST_HAVE_OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

inline void set_threads(int n) {
#ifdef MNISTFAST_HAVE_OPENMP
    omp_set_num_threads(n);
#else
    (void)n;
#endif
}

inline bool have_openmp() {
#ifdef MNISTFAST_HAVE_OPENMP
    return true;
#else
    return false;
#endif
}

}  // namespace mf
