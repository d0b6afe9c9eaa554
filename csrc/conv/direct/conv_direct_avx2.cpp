// The single-channel direct convolution for avx2 (compiled with its flags; called only where the CPU has it).
#define MF_ISA avx2
#include "conv/direct/conv_direct_impl.hpp"
