#include "elementwise/augment.hpp"

#include <cmath>

#include "core/parallel.hpp"
#include "python/registry.hpp"

namespace mf {

void affine_warp(const float* x, const float* params, int N, int H, int W, int C, float* out) {
    const float cx = 0.5f * static_cast<float>(W - 1), cy = 0.5f * static_cast<float>(H - 1);
    const long image = static_cast<long>(H) * W * C;
    MF_PARALLEL_FOR_IF(static_cast<long>(N) * image >= MIN_PARALLEL_ELEMS)(int n = 0; n < N; ++n) {
        const float* p = params + 6L * n;
        const float* src = x + n * image;
        float* dst = out + n * image;
        for (int y = 0; y < H; ++y) {
            for (int xo = 0; xo < W; ++xo) {
                const float u = static_cast<float>(xo) - cx, v = static_cast<float>(y) - cy;
                const float sx = p[0] * u + p[1] * v + cx + p[4];
                const float sy = p[2] * u + p[3] * v + cy + p[5];
                const float fx0 = std::floor(sx), fy0 = std::floor(sy);
                const float ax = sx - fx0, ay = sy - fy0;
                // Corners: (x0, y0) weight (1-ax)(1-ay), (x0+1, y0) ax(1-ay), (x0, y0+1) (1-ax)ay, ...
                const long x0 = static_cast<long>(fx0), y0 = static_cast<long>(fy0);
                float* o = dst + (static_cast<long>(y) * W + xo) * C;
                for (int c = 0; c < C; ++c) o[c] = 0.0f;
                for (int dy = 0; dy < 2; ++dy) {
                    const long yy = y0 + dy;
                    if (yy < 0 || yy >= H) continue;
                    const float wy = dy ? ay : 1.0f - ay;
                    for (int dx = 0; dx < 2; ++dx) {
                        const long xx = x0 + dx;
                        if (xx < 0 || xx >= W) continue;
                        const float w = wy * (dx ? ax : 1.0f - ax);
                        const float* s = src + (yy * W + xx) * C;
                        for (int c = 0; c < C; ++c) o[c] += w * s[c];
                    }
                }
            }
        }
    }
}

}  // namespace mf

// -- the Python boundary: these kernels' checked bindings (python/registry.hpp) ------------------
namespace mfpy {
namespace {

using std::to_string;

py::array affine_warp(const py::object& x_obj, const py::object& params_obj, const py::object& out_obj) {
    const char* fn = "affine_warp";
    auto x = checked(fn, "x", x_obj, 4, false);
    auto params = checked(fn, "params", params_obj, 2, false);
    auto out = checked(fn, "out", out_obj, 4, true);
    expect_int_range(fn, x);
    expect_shape(fn, "params", params, {x.shape(0), 6});
    expect_shape(fn, "out", out, {x.shape(0), x.shape(1), x.shape(2), x.shape(3)});
    expect_no_alias(fn, "out", out, {{"x", &x}, {"params", &params}});
    const float* p = fptr(params);
    for (py::ssize_t k = 0; k < params.size(); ++k)
        if (!std::isfinite(p[k]) || std::fabs(p[k]) > 1e6f)
            throw py::value_error(std::string(fn) + ": params[" + to_string(k / 6) + "] holds a non-finite or huge value");
    {
        py::gil_scoped_release nogil;
        mf::affine_warp(fptr(x), p, as_int(fn, x.shape(0)), as_int(fn, x.shape(1)), as_int(fn, x.shape(2)),
                        as_int(fn, x.shape(3)), fptr_mut(out));
    }
    return out;
}

}  // namespace

MF_BIND_KERNELS(bind_augment) {
    cls.def("affine_warp", method(&affine_warp), py::arg("x"), py::arg("params"), py::arg("out"));
}

}  // namespace mfpy
