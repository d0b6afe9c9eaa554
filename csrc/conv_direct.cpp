// Picks the single-channel direct convolution built for the ISA of the selected GEMM kernel. The
// naive kernel, the test oracle, keeps the plain im2col path.
#include "conv_direct.hpp"

#include "gemm.hpp"

namespace mf {

bool conv1ch_forward(const float* x, const float* w, const float* bias, float* out, const ConvGeom& g, bool relu) {
    switch (gemm_kernel()) {
        case GemmKernel::Naive: return false;
        case GemmKernel::Generic: return generic::conv1ch_forward(x, w, bias, out, g, relu);
#if defined(__x86_64__) || defined(_M_X64)
        case GemmKernel::Avx2: return avx2::conv1ch_forward(x, w, bias, out, g, relu);
        case GemmKernel::Avx512: return avx512::conv1ch_forward(x, w, bias, out, g, relu);
#else
        default: return false;
#endif
    }
    return false;
}

bool conv1ch_backward(const float* dy, const float* x, float* dw, float* db, const ConvGeom& g) {
    switch (gemm_kernel()) {
        case GemmKernel::Naive: return false;
        case GemmKernel::Generic: return generic::conv1ch_backward(dy, x, dw, db, g);
#if defined(__x86_64__) || defined(_M_X64)
        case GemmKernel::Avx2: return avx2::conv1ch_backward(dy, x, dw, db, g);
        case GemmKernel::Avx512: return avx512::conv1ch_backward(dy, x, dw, db, g);
#else
        default: return false;
#endif
    }
    return false;
}

bool conv1ch_pool_forward(const float* x, const float* w, const float* bias, float* out, int32_t* argmax,
                          const ConvGeom& g, bool relu, int P) {
    switch (gemm_kernel()) {
        case GemmKernel::Naive: return false;
        case GemmKernel::Generic: return generic::conv1ch_pool_forward(x, w, bias, out, argmax, g, relu, P);
#if defined(__x86_64__) || defined(_M_X64)
        case GemmKernel::Avx2: return avx2::conv1ch_pool_forward(x, w, bias, out, argmax, g, relu, P);
        case GemmKernel::Avx512: return avx512::conv1ch_pool_forward(x, w, bias, out, argmax, g, relu, P);
#else
        default: return false;
#endif
    }
    return false;
}

bool conv1ch_pool_backward(const float* dy, const int32_t* argmax, const float* out, bool relu_mask, const float* x,
                           float* dw, float* db, const ConvGeom& g, int P, long* bad_argmax) {
    switch (gemm_kernel()) {
        case GemmKernel::Naive: return false;
        case GemmKernel::Generic:
            return generic::conv1ch_pool_backward(dy, argmax, out, relu_mask, x, dw, db, g, P, bad_argmax);
#if defined(__x86_64__) || defined(_M_X64)
        case GemmKernel::Avx2: return avx2::conv1ch_pool_backward(dy, argmax, out, relu_mask, x, dw, db, g, P, bad_argmax);
        case GemmKernel::Avx512:
            return avx512::conv1ch_pool_backward(dy, argmax, out, relu_mask, x, dw, db, g, P, bad_argmax);
#else
        default: return false;
#endif
    }
    return false;
}

}  // namespace mf
