// The extension module: the Kernels class (one backend object's settings), the module-level
// queries, and every kernel binding registered from its kernel's file (python/registry.hpp).
// Each binding checks dtype, shape, contiguity, writability and aliasing, raises a Python
// exception naming the argument, and only then releases the GIL and calls a kernel that trusts
// its inputs. Nothing is ever converted or copied: an output converted to float32 would be a
// temporary the caller never sees.
#include <pybind11/pybind11.h>
#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

#include "conv/conv.hpp"
#include "gemm/gemm.hpp"
#include "python/check.hpp"
#include "python/registry.hpp"
#include "core/parallel.hpp"

namespace mf {
#if defined(__x86_64__) || defined(_M_X64)
double fma_peak_gflops_avx2(long iters);
double fma_peak_gflops_avx512(long iters);
double dot_peak_gflops_avx512bf16(long iters);
#endif
}  // namespace mf

namespace py = pybind11;
using namespace mfpy;

std::vector<Binder>& mfpy::binders() {
    static std::vector<Binder> all;
    return all;
}

namespace {

py::object peak_gflops(const mf::Context& ctx, long iters) {
    // The peak of the instructions the selected GEMM kernel multiplies with: the number its GFLOP/s
    // are measured against (bf16 dot products for a bf16 kernel).
    if (iters < 1) throw py::value_error("peak_gflops: iters must be >= 1");
#if defined(__x86_64__) || defined(_M_X64)
    double (*probe)(long) = nullptr;
    switch (ctx.gemm) {
        case mf::GemmKernel::Avx2: probe = mf::fma_peak_gflops_avx2; break;
        case mf::GemmKernel::Avx512: probe = mf::fma_peak_gflops_avx512; break;
        case mf::GemmKernel::Avx512Bf16: probe = mf::dot_peak_gflops_avx512bf16; break;
        default: break;
    }
    if (probe) {
        double gflops;
        {
            py::gil_scoped_release nogil;
            gflops = probe(iters);
        }
        return py::float_(gflops);
    }
#endif
    return py::none();
}

std::vector<std::string> kernel_names(const std::vector<mf::GemmKernel>& kernels) {
    std::vector<std::string> names;
    for (auto k : kernels) names.emplace_back(mf::gemm_kernel_name(k));
    return names;
}

}  // namespace

PYBIND11_MODULE(_core, m) {
    m.doc() = "mnistfast C++ kernels (float32, row-major, C-contiguous). Kernels(threads, gemm_kernel) "
              "carries the settings; every kernel is one of its methods.";
    // Captured once: later calls set the calling thread's OpenMP thread count.
    static const int default_threads = mf::max_threads();
    m.def("default_threads", [] { return default_threads; }, "OpenMP's default: OMP_NUM_THREADS, else all cores.");
    m.def("has_openmp", &mf::have_openmp);
    m.def("available_gemm_kernels", [] { return kernel_names(mf::available_gemm_kernels()); },
          "The float32 GEMM kernels this CPU runs.");
    m.def("available_bf16_gemm_kernels", [] { return kernel_names(mf::available_bf16_gemm_kernels()); },
          "The GEMM kernels with bf16 operands this CPU runs: 'generic-bf16' everywhere, then those with bf16 instructions.");
    m.def(
        "float_gemm_kernel",
        [](const std::string& name) {
            try {
                return std::string(mf::gemm_kernel_name(mf::float_kernel(mf::parse_gemm_kernel(name))));
            } catch (const std::invalid_argument& e) {
                throw py::value_error(e.what());
            }
        },
        py::arg("kernel"), "The float32 kernel of a GEMM kernel's instruction set (a float32 kernel is its own).");

    py::class_<Kernels> k(m, "Kernels");
    k.def(py::init([](int threads, const std::string& kernel, const std::string& conv) {
             if (threads < 1) throw py::value_error("Kernels: threads must be >= 1, got " + std::to_string(threads));
             try {
                 return Kernels{mf::Context{threads, mf::parse_gemm_kernel(kernel), mf::parse_conv_algorithm(conv.c_str())}};
             } catch (const std::invalid_argument& e) {
                 throw py::value_error(std::string("Kernels: ") + e.what());
             }
         }),
         py::arg("threads") = default_threads, py::arg("gemm_kernel") = "auto", py::arg("conv_algorithm") = "auto",
         "threads >= 1; gemm_kernel 'auto' (the best this CPU supports) or one of available_gemm_kernels(); "
         "conv_algorithm 'auto' (Winograd for 3x3 stride-1 convolutions of 16 or more channels in and out, "
         "im2col otherwise), 'im2col' or 'winograd' (every 3x3 stride-1 convolution).");
    // Settable between calls: trainings sharing the machine's cores change their share as others
    // start and finish (mnistfast/core_share.py).
    k.def_property(
        "threads", [](const Kernels& s) { return s.ctx.threads; },
        [](Kernels& s, int threads) {
            if (threads < 1) throw py::value_error("Kernels: threads must be >= 1, got " + std::to_string(threads));
            s.ctx.threads = threads;
        });
    // Settable between calls too: a backend switches between float32 and bf16 operands (precision).
    k.def_property(
        "gemm_kernel", [](const Kernels& s) { return std::string(mf::gemm_kernel_name(s.ctx.gemm)); },
        [](Kernels& s, const std::string& kernel) {
            try {
                s.ctx.gemm = mf::parse_gemm_kernel(kernel);
            } catch (const std::invalid_argument& e) {
                throw py::value_error(std::string("Kernels: ") + e.what());
            }
        });
    k.def_property_readonly("conv_algorithm",
                            [](const Kernels& s) { return std::string(mf::conv_algorithm_name(s.ctx.conv)); });
    k.def("peak_gflops", method(&peak_gflops), py::arg("iters") = 50'000'000L,
          "Measured multiply-add throughput of all kernel threads in GFLOP/s, in the instructions of the GEMM "
          "kernel (float32 FMA, or bf16 dot products for avx512bf16); None for the generic and naive kernels.");
    for (Binder bind : binders()) bind(k);
}
