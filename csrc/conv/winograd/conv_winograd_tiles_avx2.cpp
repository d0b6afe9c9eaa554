// The Winograd tile transforms for avx2 (compiled with its flags; called only where the CPU has it).
#define MF_ISA avx2
#include "conv/winograd/conv_winograd_tiles_impl.hpp"
