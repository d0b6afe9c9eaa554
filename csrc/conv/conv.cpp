// The convolution dispatcher: which algorithm computes a convolution, decided in one place from
// its geometry and the caller's settings. The algorithms themselves live beside it: im2col.cpp,
// direct/ (one input channel), winograd/ (3x3, stride 1).
#include "conv/conv.hpp"

#include <cstring>
#include <stdexcept>
#include <string>

#include "conv/direct/conv_direct.hpp"
#include "conv/im2col.hpp"
#include "conv/winograd/conv_winograd.hpp"

namespace mf {

namespace {

// Whether g runs by Winograd F(2x2, 3x3) under the algorithm setting a.
bool use_winograd(ConvAlgorithm a, const ConvGeom& g) {
    if (g.KH != 3 || g.KW != 3 || g.SH != 1 || g.SW != 1) return false;
    switch (a) {
        case ConvAlgorithm::Im2col: return false;
        case ConvAlgorithm::Winograd: return true;
        case ConvAlgorithm::Auto: break;
    }
    // The tile GEMMs have K = C (forward) and K = F (input gradient): below 16 channels they are
    // too thin for the packed micro-kernel, and im2col is as fast (docs/performance.md).
    return g.C >= 16 && g.F >= 16;
}

}  // namespace

const char* conv_algorithm_name(ConvAlgorithm a) {
    switch (a) {
        case ConvAlgorithm::Auto: return "auto";
        case ConvAlgorithm::Im2col: return "im2col";
        case ConvAlgorithm::Winograd: return "winograd";
    }
    return "?";
}

ConvAlgorithm parse_conv_algorithm(const char* name) {
    for (auto a : {ConvAlgorithm::Auto, ConvAlgorithm::Im2col, ConvAlgorithm::Winograd})
        if (std::strcmp(name, conv_algorithm_name(a)) == 0) return a;
    throw std::invalid_argument(std::string("unknown conv algorithm '") + name + "' (auto, im2col, winograd)");
}

void conv2d_forward(const Context& ctx, const float* x, const float* w, const float* bias, float* out,
                    const ConvGeom& g, bool relu) {
    if (use_winograd(ctx.conv, g)) return winograd_forward(ctx.gemm, x, w, bias, out, g, relu);
    if (conv1ch_forward(ctx.gemm, x, w, bias, out, g, relu)) return;  // one input channel: no patch matrix
    im2col_forward(ctx.gemm, x, w, bias, out, g, relu);
}

void conv2d_backward(const Context& ctx, const float* dy, const float* x, const float* w, float* dw, float* db,
                     float* dx, const ConvGeom& g) {
    if (use_winograd(ctx.conv, g)) return winograd_backward(ctx.gemm, dy, x, w, dw, db, dx, g);
    if (!dx && conv1ch_backward(ctx.gemm, dy, x, dw, db, g)) return;  // a first layer with one channel
    im2col_backward(ctx.gemm, dy, x, w, dw, db, dx, g);
}

bool conv2d_maxpool_forward(const Context& ctx, const float* x, const float* w, const float* bias, float* out,
                            int32_t* argmax, const ConvGeom& g, bool relu, int pool) {
    if (use_winograd(ctx.conv, g) && winograd_pool_forward(ctx.gemm, x, w, bias, out, argmax, g, relu, pool))
        return true;
    return conv1ch_pool_forward(ctx.gemm, x, w, bias, out, argmax, g, relu, pool);
}

bool conv2d_maxpool_backward(const Context& ctx, const float* dy, const int32_t* argmax, const float* out,
                             bool relu_mask, const float* x, const float* w, float* dw, float* db, float* dx,
                             const ConvGeom& g, int pool, long* bad_argmax) {
    *bad_argmax = 0;
    if (use_winograd(ctx.conv, g) &&
        winograd_pool_backward(ctx.gemm, dy, argmax, out, relu_mask, x, w, dw, db, dx, g, pool))
        return true;
    return !dx && conv1ch_pool_backward(ctx.gemm, dy, argmax, out, relu_mask, x, dw, db, g, pool, bad_argmax);
}

}  // namespace mf
