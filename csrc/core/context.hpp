// The settings a kernel call runs under, passed explicitly to every kernel that has a choice to
// make: which GEMM micro-kernel (and with it which ISA the convolutions use), which convolution
// algorithm, how many threads. A Python backend object owns one (python/check.hpp) and hands it
// to each call. The thread count reaches OpenMP as its per-thread setting, applied at the Python
// boundary on entry: OpenMP has no other way to take it for the parallel regions inside.
#pragma once

namespace mf {

// The GEMM implementation: the naive oracle, the portable blocked kernel, or a blocked kernel
// with an AVX2 or AVX-512 micro-kernel (gemm/gemm.hpp picks the best the CPU supports). The bf16
// kernels round every GEMM operand to bfloat16 and sum in float32: choosing one is what bf16
// precision means, for the dense layers and the convolutions' GEMMs alike.
enum class GemmKernel { Naive, Generic, Avx2, Avx512, GenericBf16, Avx512Bf16 };

// Which algorithm a convolution that several can compute runs by (conv/conv.hpp).
enum class ConvAlgorithm {
    Auto,      // Winograd where it applies and measured faster (use_winograd), im2col otherwise
    Im2col,    // never Winograd
    Winograd,  // Winograd for every 3x3 stride-1 convolution (tests reach small channel counts)
};

struct Context {
    int threads = 1;
    GemmKernel gemm = GemmKernel::Generic;
    ConvAlgorithm conv = ConvAlgorithm::Auto;
};

}  // namespace mf
