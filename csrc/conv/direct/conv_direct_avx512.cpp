// The single-channel direct convolution for avx512 (compiled with its flags; called only where the CPU has it).
#define MF_ISA avx512
#include "conv/direct/conv_direct_impl.hpp"
