#include "elementwise/optim.hpp"

#include <cfloat>
#include <cmath>
#include <vector>

#include "core/parallel.hpp"
#include "python/registry.hpp"

namespace mf {

namespace {

// Optimizer state below the smallest normal float becomes 0. The momentum of a weight whose
// gradient stays 0 (a dead ReLU unit) decays geometrically into the subnormal range, where every
// multiply costs the CPU a microcode assist: measured on the basic CNN, 18 % of Adam's first-moment
// entries were subnormal after three epochs, which took 6.4, 7.2 and 7.5 s (flat at 6.6-6.8 s now).
// The values lost are below 1.2e-38; the parameter updates they would make are smaller still.
inline float flush_subnormal(float x) { return std::fabs(x) < FLT_MIN ? 0.0f : x; }

}  // namespace

void sgd_step(float* p, const float* grad, float* velocity, long n, float lr, float momentum, bool nesterov,
              float weight_decay, GradPrep prep) {
    MF_PARALLEL_FOR_IF(n >= MIN_PARALLEL_ELEMS)(long k = 0; k < n; ++k) {
        float g = prep(grad[k]) + weight_decay * p[k];
        if (momentum != 0.0f) {
            const float v = flush_subnormal(momentum * velocity[k] + g);
            velocity[k] = v;
            g = nesterov ? g + momentum * v : v;
        }
        p[k] -= lr * g;
    }
}

void adam_step(float* p, const float* grad, float* m, float* v, long n, float lr, float beta1, float beta2, float eps,
               float weight_decay, bool decoupled, double bias1, double bias2, GradPrep prep) {
    // PyTorch's arithmetic: p -= (lr / bias1) * m / (sqrt(v) / sqrt(bias2) + eps).
    const float step_size = static_cast<float>(lr / bias1);
    const float inv_sqrt_bias2 = static_cast<float>(1.0 / std::sqrt(bias2));
    const float decay = decoupled ? 1.0f - lr * weight_decay : 1.0f;
    const float l2 = decoupled ? 0.0f : weight_decay;
    MF_PARALLEL_FOR_IF(n >= MIN_PARALLEL_ELEMS)(long k = 0; k < n; ++k) {
        const float g = prep(grad[k]) + l2 * p[k];
        const float mk = flush_subnormal(beta1 * m[k] + (1.0f - beta1) * g);
        const float vk = flush_subnormal(beta2 * v[k] + (1.0f - beta2) * g * g);
        m[k] = mk;
        v[k] = vk;
        p[k] = p[k] * decay - step_size * mk / (std::sqrt(vk) * inv_sqrt_bias2 + eps);
    }
}

double sum_squares(const float* g, long n) {
    constexpr long CHUNK = 1L << 14;
    const long chunks = (n + CHUNK - 1) / CHUNK;
    std::vector<double> part(static_cast<size_t>(chunks), 0.0);
    MF_PARALLEL_FOR_IF(n >= MIN_PARALLEL_ELEMS)(long c = 0; c < chunks; ++c) {
        double s = 0.0;
        const long hi = (c + 1) * CHUNK < n ? (c + 1) * CHUNK : n;
        for (long k = c * CHUNK; k < hi; ++k) s += static_cast<double>(g[k]) * g[k];
        part[c] = s;
    }
    double total = 0.0;
    for (double s : part) total += s;
    return total;
}

// -- the Python boundary --------------------------------------------------------------------------
namespace {

namespace py = pybind11;
using namespace mfpy;
using std::to_string;

GradPrep grad_prep(const char* fn, float grad_scale, float clip_value) {
    if (!std::isfinite(grad_scale) || grad_scale < 0.0f)
        throw py::value_error(std::string(fn) + ": grad_scale must be finite and >= 0");
    if (!std::isfinite(clip_value)) throw py::value_error(std::string(fn) + ": clip_value must be finite");
    return {grad_scale, clip_value};
}

// Parameter, gradient and state buffers: 1-D, one length, pairwise disjoint.
void check_flat(const char* fn, std::initializer_list<std::pair<const char*, const py::array*>> arrays) {
    const auto& [name0, first] = *arrays.begin();
    for (auto& [name, arr] : arrays) {
        expect_same_shape(fn, name, *arr, name0, *first);
        for (auto& [other_name, other] : arrays)
            if (arr < other) expect_no_alias(fn, name, *arr, {{other_name, other}});
    }
}

void sgd_step_binding(const py::object& p_obj, const py::object& g_obj, const py::object& v_obj, float lr,
                      float momentum, bool nesterov, float weight_decay, float grad_scale, float clip_value) {
    const char* fn = "sgd_step";
    const auto prep = grad_prep(fn, grad_scale, clip_value);
    auto p = checked(fn, "param", p_obj, 1, true);
    auto g = checked(fn, "grad", g_obj, 1, false);
    py::array v;
    if (momentum != 0.0f) {
        if (v_obj.is_none()) throw py::value_error(std::string(fn) + ": momentum needs a velocity buffer");
        v = checked(fn, "velocity", v_obj, 1, true);
        check_flat(fn, {{"param", &p}, {"grad", &g}, {"velocity", &v}});
    } else {
        check_flat(fn, {{"param", &p}, {"grad", &g}});
    }
    if (nesterov && momentum == 0.0f) throw py::value_error(std::string(fn) + ": nesterov needs momentum > 0");
    float* vp = momentum != 0.0f ? fptr_mut(v) : nullptr;
    {
        py::gil_scoped_release nogil;
        sgd_step(fptr_mut(p), fptr(g), vp, static_cast<long>(p.size()), lr, momentum, nesterov, weight_decay, prep);
    }
}

void adam_step_binding(const py::object& p_obj, const py::object& g_obj, const py::object& m_obj,
                       const py::object& v_obj, float lr, float beta1, float beta2, float eps, float weight_decay,
                       bool decoupled, long step, float grad_scale, float clip_value) {
    const char* fn = "adam_step";
    const auto prep = grad_prep(fn, grad_scale, clip_value);
    if (step < 1) throw py::value_error(std::string(fn) + ": step counts from 1, got " + to_string(step));
    if (!(beta1 >= 0.0f && beta1 < 1.0f && beta2 >= 0.0f && beta2 < 1.0f))
        throw py::value_error(std::string(fn) + ": betas must be in [0, 1)");
    auto p = checked(fn, "param", p_obj, 1, true);
    auto g = checked(fn, "grad", g_obj, 1, false);
    auto m = checked(fn, "m", m_obj, 1, true);
    auto v = checked(fn, "v", v_obj, 1, true);
    check_flat(fn, {{"param", &p}, {"grad", &g}, {"m", &m}, {"v", &v}});
    const double bias1 = 1.0 - std::pow(static_cast<double>(beta1), static_cast<double>(step));
    const double bias2 = 1.0 - std::pow(static_cast<double>(beta2), static_cast<double>(step));
    {
        py::gil_scoped_release nogil;
        adam_step(fptr_mut(p), fptr(g), fptr_mut(m), fptr_mut(v), static_cast<long>(p.size()), lr, beta1, beta2,
                      eps, weight_decay, decoupled, bias1, bias2, prep);
    }
}

double sum_squares_binding(const py::object& g_obj) {
    auto g = checked("sum_squares", "x", g_obj, 1, false);
    py::gil_scoped_release nogil;
    return sum_squares(fptr(g), static_cast<long>(g.size()));
}

}  // namespace

MF_BIND_KERNELS(bind_optimizers) {
    cls.def("sgd_step", mfpy::method(&sgd_step_binding), py::arg("param"), py::arg("grad"), py::arg("velocity"), py::arg("lr"),
            py::arg("momentum"), py::arg("nesterov"), py::arg("weight_decay"), py::arg("grad_scale"), py::arg("clip_value"));
    cls.def("adam_step", mfpy::method(&adam_step_binding), py::arg("param"), py::arg("grad"), py::arg("m"), py::arg("v"), py::arg("lr"),
            py::arg("beta1"), py::arg("beta2"), py::arg("eps"), py::arg("weight_decay"), py::arg("decoupled"),
            py::arg("step"), py::arg("grad_scale"), py::arg("clip_value"));
    cls.def("sum_squares", mfpy::method(&sum_squares_binding), py::arg("x"), "sum of x**2 in double");
}

}  // namespace mf
