#include "gemm.hpp"

namespace mf {

void sgemm(const GemmArgs& g) { sgemm_naive(g); }

}  // namespace mf
