// Picks the single-channel direct convolution built for the ISA of the selected GEMM kernel. The
// naive kernel, the test oracle, keeps the plain im2col path.
#include "conv/direct/conv_direct.hpp"

#include "gemm/gemm.hpp"

namespace mf {

// Returns isa::fn(args...) for the ISA of GEMM kernel `kernel`, false for the naive one.
#if defined(__x86_64__) || defined(_M_X64)
#define MF_DISPATCH(fn, ...)                                                   \
    switch (float_kernel(kernel)) {                                             \
        case GemmKernel::Naive: return false;                                  \
        case GemmKernel::Generic: return generic::fn(__VA_ARGS__);             \
        case GemmKernel::Avx2: return avx2::fn(__VA_ARGS__);                   \
        case GemmKernel::Avx512: return avx512::fn(__VA_ARGS__);               \
        default: break;                                                        \
    }                                                                          \
    return false
#else
#define MF_DISPATCH(fn, ...) return kernel != GemmKernel::Naive && generic::fn(__VA_ARGS__)
#endif

bool conv1ch_forward(GemmKernel kernel, const float* x, const float* w, const float* bias, float* out, const ConvGeom& g, bool relu) {
    MF_DISPATCH(conv1ch_forward, x, w, bias, out, g, relu);
}

bool conv1ch_backward(GemmKernel kernel, const float* dy, const float* x, float* dw, float* db, const ConvGeom& g) {
    MF_DISPATCH(conv1ch_backward, dy, x, dw, db, g);
}

bool conv1ch_pool_forward(GemmKernel kernel, const float* x, const float* w, const float* bias, float* out, int32_t* argmax,
                          const ConvGeom& g, bool relu, int P) {
    MF_DISPATCH(conv1ch_pool_forward, x, w, bias, out, argmax, g, relu, P);
}

bool conv1ch_pool_backward(GemmKernel kernel, const float* dy, const int32_t* argmax, const float* out, bool relu_mask, const float* x,
                           float* dw, float* db, const ConvGeom& g, int P, long* bad_argmax) {
    MF_DISPATCH(conv1ch_pool_backward, dy, argmax, out, relu_mask, x, dw, db, g, P, bad_argmax);
}

#undef MF_DISPATCH

}  // namespace mf
