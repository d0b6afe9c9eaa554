// Argument checks for the Python boundary: each raises a Python exception that names the
// function and the argument, before any kernel touches memory.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <sstream>
#include <string>

#include "core/context.hpp"
#include "core/parallel.hpp"

namespace mfpy {

namespace py = pybind11;

inline std::string shape_str(const py::array& a) {
    std::ostringstream s;
    s << "(";
    for (py::ssize_t d = 0; d < a.ndim(); ++d) s << (d ? ", " : "") << a.shape(d);
    s << (a.ndim() == 1 ? ",)" : ")");
    return s.str();
}

inline std::string dims_str(std::initializer_list<py::ssize_t> dims) {
    std::ostringstream s;
    s << "(";
    size_t k = 0;
    for (auto d : dims) s << (k++ ? ", " : "") << d;
    s << (dims.size() == 1 ? ",)" : ")");
    return s.str();
}

// Checks one array argument and returns it. `ndim` is the required rank.
inline py::array checked(const char* fn, const char* name, const py::object& obj, int ndim, bool writable,
                  const py::dtype& dtype = py::dtype::of<float>()) {
    if (!py::isinstance<py::array>(obj)) {
        throw py::type_error(std::string(fn) + ": " + name + " must be a numpy array, got " +
                             std::string(py::str(py::type::handle_of(obj).attr("__name__"))));
    }
    auto a = py::reinterpret_borrow<py::array>(obj);
    if (!a.dtype().is(dtype)) {
        throw py::type_error(std::string(fn) + ": " + name + " must have dtype " +
                             std::string(py::str(dtype)) + ", got " + std::string(py::str(a.dtype())));
    }
    if (a.ndim() != ndim) {
        throw py::value_error(std::string(fn) + ": " + name + " must be " + std::to_string(ndim) +
                              "-D, got shape " + shape_str(a));
    }
    if (!(a.flags() & py::array::c_style)) {
        throw py::value_error(std::string(fn) + ": " + name + " must be C-contiguous (use np.ascontiguousarray)");
    }
    if (writable && !a.writeable()) {
        throw py::value_error(std::string(fn) + ": " + name + " is read-only");
    }
    return a;
}

inline void expect_shape(const char* fn, const char* name, const py::array& a, std::initializer_list<py::ssize_t> dims) {
    size_t k = 0;
    bool ok = static_cast<size_t>(a.ndim()) == dims.size();
    for (auto d : dims) ok = ok && a.shape(static_cast<py::ssize_t>(k++)) == d;
    if (!ok) {
        throw py::value_error(std::string(fn) + ": " + name + " has shape " + shape_str(a) + ", expected " +
                              dims_str(dims));
    }
}

inline void expect_int_range(const char* fn, const py::array& a) {
    if (a.size() > INT32_MAX / 2) throw py::value_error(std::string(fn) + ": array too large");
    for (py::ssize_t d = 0; d < a.ndim(); ++d)
        if (a.shape(d) > INT32_MAX) throw py::value_error(std::string(fn) + ": dimension too large");
}

inline bool overlaps(const py::array& a, const py::array& b) {
    auto lo_a = static_cast<const char*>(a.data()), lo_b = static_cast<const char*>(b.data());
    auto hi_a = lo_a + a.nbytes(), hi_b = lo_b + b.nbytes();
    return a.nbytes() > 0 && b.nbytes() > 0 && lo_a < hi_b && lo_b < hi_a;
}

inline void expect_no_alias(const char* fn, const char* out_name, const py::array& out,
                     std::initializer_list<std::pair<const char*, const py::array*>> inputs) {
    for (auto& [name, arr] : inputs) {
        if (overlaps(out, *arr)) {
            throw py::value_error(std::string(fn) + ": " + out_name + " must not share memory with " + name);
        }
    }
}

inline const float* fptr(const py::array& a) { return static_cast<const float*>(a.data()); }
inline float* fptr_mut(py::array& a) { return static_cast<float*>(a.mutable_data()); }

// A dimension passed to a kernel as int.
inline int as_int(const char* fn, py::ssize_t v) {
    if (v > INT32_MAX) throw py::value_error(std::string(fn) + ": dimension too large");
    return static_cast<int>(v);
}

inline void expect_positive(const char* fn, const char* name, long v) {
    if (v < 1) throw py::value_error(std::string(fn) + ": " + name + " must be >= 1, got " + std::to_string(v));
}

// An optional output: null when obj is None; its array is kept in holder.
inline float* optional_out(const char* fn, const char* name, const py::object& obj,
                           std::initializer_list<py::ssize_t> dims, py::array& holder, int ndim) {
    if (obj.is_none()) return nullptr;
    holder = checked(fn, name, obj, ndim, true);
    expect_shape(fn, name, holder, dims);
    return fptr_mut(holder);
}

// An optional (F,) bias: null when b is None; its array is kept in holder.
inline const float* optional_bias(const char* fn, const py::object& b_obj, int F, py::array& holder,
                                  const py::array& out) {
    if (b_obj.is_none()) return nullptr;
    holder = checked(fn, "b", b_obj, 1, false);
    expect_shape(fn, "b", holder, {F});
    expect_no_alias(fn, "out", out, {{"b", &holder}});
    return fptr(holder);
}

// The kernels skip and count argmax entries outside their image; this names the first one (the
// scan runs only on that error path).
[[noreturn]] inline void throw_first_bad_argmax(const char* fn, const py::array& arg, long image) {
    const auto* a = static_cast<const int32_t*>(arg.data());
    for (py::ssize_t k = 0; k < arg.size(); ++k) {
        if (a[k] < 0 || a[k] >= image)
            throw py::value_error(std::string(fn) + ": argmax entry " + std::to_string(k) + " = " + std::to_string(a[k]) +
                                  " is outside an image of " + std::to_string(image) + " elements");
    }
    throw py::value_error(std::string(fn) + ": argmax has entries outside their image");
}

// An array of any rank (the elementwise kernels take any shape).
inline py::array checked_any(const char* fn, const char* name, const py::object& obj, bool writable,
                             const py::dtype& dtype = py::dtype::of<float>()) {
    py::ssize_t ndim = py::isinstance<py::array>(obj) ? py::reinterpret_borrow<py::array>(obj).ndim() : 0;
    return checked(fn, name, obj, static_cast<int>(ndim), writable, dtype);
}

inline void expect_same_shape(const char* fn, const char* name, const py::array& a, const char* ref_name,
                              const py::array& ref) {
    bool ok = a.ndim() == ref.ndim();
    for (py::ssize_t d = 0; ok && d < a.ndim(); ++d) ok = a.shape(d) == ref.shape(d);
    if (!ok) {
        throw py::value_error(std::string(fn) + ": " + name + " has shape " + shape_str(a) + ", expected the shape of " +
                              ref_name + " " + shape_str(ref));
    }
}

// An output that may be the input itself (in place) but must not partly overlap it.
inline void expect_same_or_disjoint(const char* fn, const char* out_name, const py::array& out, const char* in_name,
                                    const py::array& in) {
    if (out.data() != in.data()) expect_no_alias(fn, out_name, out, {{in_name, &in}});
}

// The Python class every kernel is a method of: it holds the settings (core/context.hpp) of one
// backend object. Kernels that have a choice to make take the context as their first argument;
// the thread count is applied as OpenMP's setting for the calling thread on entry to every call.
struct Kernels {
    mf::Context ctx;
};

// Binds f(args...) as the method Kernels.f(args...).
template <typename R, typename... Args>
auto method(R (*f)(Args...)) {
    return [f](const Kernels& k, Args... args) -> R {
        mf::set_threads(k.ctx.threads);
        return f(args...);
    };
}

// Binds f(ctx, args...) as the method Kernels.f(args...), passing the object's settings.
template <typename R, typename... Args>
auto method(R (*f)(const mf::Context&, Args...)) {
    return [f](const Kernels& k, Args... args) -> R {
        mf::set_threads(k.ctx.threads);
        return f(k.ctx, args...);
    };
}

}  // namespace mfpy
