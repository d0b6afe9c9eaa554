// The Winograd tile transforms for avx512 (compiled with its flags; called only where the CPU has it).
#define MF_ISA avx512
#include "conv/winograd/conv_winograd_tiles_impl.hpp"
