// The single-channel direct convolution for the baseline ISA (any x86-64 or other CPU).
#define MF_ISA generic
#include "conv/direct/conv_direct_impl.hpp"
