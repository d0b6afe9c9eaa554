// The Winograd tile transforms for any x86-64 (and other CPUs): baseline ISA.
#define MF_ISA generic
#include "conv/winograd/conv_winograd_tiles_impl.hpp"
