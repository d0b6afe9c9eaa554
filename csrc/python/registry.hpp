// Kernels bind themselves: a kernel's Python binding sits at the bottom of the file that defines
// the kernel, registered with MF_BIND_KERNELS, and the module adds every registered binding to the
// Kernels class when it loads. Adding a kernel then touches its own file only (CMake picks up new
// files under csrc/ by itself).
//
//   MF_BIND_KERNELS(bind_optimizers) {
//       cls.def("sum_squares", mfpy::method(&sum_squares_binding), py::arg("x"), "...");
//   }
//
// A binding checks every argument against the kernel's contract (backends/contract.py; the helpers
// are in check.hpp) before it releases the GIL; tests/test_contract.py holds it to the table.
#pragma once

#include <pybind11/pybind11.h>

#include <vector>

#include "python/check.hpp"

namespace mfpy {

using Binder = void (*)(pybind11::class_<Kernels>& cls);

// Every registered binder (a function-local static, so registration order across files is safe).
std::vector<Binder>& binders();

struct RegisterBinder {
    explicit RegisterBinder(Binder b) { binders().push_back(b); }
};

}  // namespace mfpy

// Defines `static void NAME(pybind11::class_<mfpy::Kernels>& cls)` and registers it at load time.
#define MF_BIND_KERNELS(NAME)                                                   \
    static void NAME(pybind11::class_<mfpy::Kernels>& cls);                     \
    static const mfpy::RegisterBinder NAME##_registered{&NAME};                 \
    static void NAME(pybind11::class_<mfpy::Kernels>& cls)
