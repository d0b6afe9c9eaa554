#include "elementwise/mlp_ops.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "core/parallel.hpp"
#include "python/registry.hpp"

namespace mf {

void relu_backward(const float* dy, const float* y, float* dx, long n) {
    MF_PARALLEL_FOR_IF(n >= MIN_PARALLEL_ELEMS)(long k = 0; k < n; ++k) dx[k] = y[k] > 0.0f ? dy[k] : 0.0f;
}

void bias_grad(const float* dy, int rows, int cols, float* db) {
    // Rows outer so the inner loop runs along memory and vectorizes; threads own column blocks.
    // Four rows go into four partial sums (a fixed order, combined at the end), so consecutive rows
    // do not wait on each other's additions. The result is independent of the thread count.
    constexpr int COL_BLOCK = 64, LANES = 4;
    const int blocks = (cols + COL_BLOCK - 1) / COL_BLOCK;
    MF_PARALLEL_FOR_IF(static_cast<long>(rows) * cols >= MIN_PARALLEL_ELEMS && blocks > 1)(int blk = 0; blk < blocks; ++blk) {
        const int j0 = blk * COL_BLOCK, w = std::min(cols, j0 + COL_BLOCK) - j0;
        float acc[LANES][COL_BLOCK] = {};
        int i = 0;
        for (; i + LANES <= rows; i += LANES) {
            for (int l = 0; l < LANES; ++l) {
                const float* __restrict row = dy + static_cast<long>(i + l) * cols + j0;
                for (int j = 0; j < w; ++j) acc[l][j] += row[j];
            }
        }
        for (; i < rows; ++i) {
            const float* __restrict row = dy + static_cast<long>(i) * cols + j0;
            for (int j = 0; j < w; ++j) acc[0][j] += row[j];
        }
        for (int j = 0; j < w; ++j) db[j0 + j] = (acc[0][j] + acc[1][j]) + (acc[2][j] + acc[3][j]);
    }
}

namespace {

struct RowXent {
    double loss;
    bool hit;
};

// One row: max-shifted log-sum-exp, each exp computed once (kept in d when a gradient is wanted).
inline RowXent xent_row(const float* z, int64_t label64, int cols, float inv_rows, float* d) {
    int argmax = 0;
    for (int j = 1; j < cols; ++j)
        if (z[j] > z[argmax]) argmax = j;
    const float zmax = z[argmax];
    const int label = static_cast<int>(label64);
    float sum = 0.0f;
    if (d) {
        for (int j = 0; j < cols; ++j) sum += (d[j] = std::exp(z[j] - zmax));
        const float scale = inv_rows / sum;
        for (int j = 0; j < cols; ++j) d[j] *= scale;
        d[label] -= inv_rows;
    } else {
        for (int j = 0; j < cols; ++j) sum += std::exp(z[j] - zmax);
    }
    return {static_cast<double>(std::log(sum) - (z[label] - zmax)), argmax == label};
}

}  // namespace

XentResult softmax_xent(const float* logits, const int64_t* labels, int rows, int cols, float* dlogits) {
    const float inv_rows = 1.0f / static_cast<float>(rows);
    const auto row = [&](int i) {
        return xent_row(logits + static_cast<long>(i) * cols, labels[i], cols, inv_rows,
                        dlogits ? dlogits + static_cast<long>(i) * cols : nullptr);
    };
    XentResult r{0.0, 0};
    if (static_cast<long>(rows) * cols < MIN_PARALLEL_ELEMS) {
        for (int i = 0; i < rows; ++i) {
            const RowXent x = row(i);
            r.loss += x.loss;
            r.correct += x.hit;
        }
    } else {
        std::vector<RowXent> per_row(static_cast<size_t>(rows));
        MF_PARALLEL_FOR(int i = 0; i < rows; ++i) per_row[i] = row(i);
        // Summed in row order, as in the serial branch: the loss does not depend on threads.
        for (const RowXent& x : per_row) {
            r.loss += x.loss;
            r.correct += x.hit;
        }
    }
    r.loss /= rows;
    return r;
}

void take_rows(const float* src, int cols, const int64_t* idx, int n, float* dst) {
    const size_t row_bytes = static_cast<size_t>(cols) * sizeof(float);
    MF_PARALLEL_FOR_IF(static_cast<long>(n) * cols >= MIN_PARALLEL_ELEMS)(int i = 0; i < n; ++i)
        std::memcpy(dst + static_cast<long>(i) * cols, src + idx[i] * cols, row_bytes);
}

}  // namespace mf

// -- the Python boundary: these kernels' checked bindings (python/registry.hpp) ------------------
namespace mfpy {
namespace {

using std::to_string;

py::array relu_backward(const py::object& dy_obj, const py::object& y_obj, const py::object& out_obj) {
    const char* fn = "relu_backward";
    auto dy = checked(fn, "dy", dy_obj, 2, false);
    auto y = checked(fn, "y", y_obj, 2, false);
    auto out = checked(fn, "out", out_obj, 2, true);
    expect_shape(fn, "y", y, {dy.shape(0), dy.shape(1)});
    expect_shape(fn, "out", out, {dy.shape(0), dy.shape(1)});
    // Elementwise: out may be dy itself (in place), but must not partly overlap it or touch y.
    if (out.data() != dy.data()) expect_no_alias(fn, "out", out, {{"dy", &dy}});
    expect_no_alias(fn, "out", out, {{"y", &y}});
    {
        py::gil_scoped_release nogil;
        mf::relu_backward(fptr(dy), fptr(y), fptr_mut(out), static_cast<long>(dy.size()));
    }
    return out;
}

py::array bias_grad(const py::object& dy_obj, const py::object& out_obj) {
    const char* fn = "bias_grad";
    auto dy = checked(fn, "dy", dy_obj, 2, false);
    auto out = checked(fn, "out", out_obj, 1, true);
    expect_shape(fn, "out", out, {dy.shape(1)});
    expect_no_alias(fn, "out", out, {{"dy", &dy}});
    expect_int_range(fn, dy);
    {
        py::gil_scoped_release nogil;
        mf::bias_grad(fptr(dy), static_cast<int>(dy.shape(0)), static_cast<int>(dy.shape(1)), fptr_mut(out));
    }
    return out;
}

// The loss and correct count of softmax + cross-entropy, after checking the arguments as `fn`.
mf::XentResult checked_xent(const char* fn, const py::object& logits_obj, const py::object& labels_obj,
                            const py::object& dlogits_obj, const py::array* totals) {
    auto logits = checked(fn, "logits", logits_obj, 2, false);
    auto labels = checked(fn, "labels", labels_obj, 1, false, py::dtype::of<int64_t>());
    const py::ssize_t rows = logits.shape(0), cols = logits.shape(1);
    if (rows == 0 || cols == 0) throw py::value_error(std::string(fn) + ": logits is empty, shape " + shape_str(logits));
    expect_shape(fn, "labels", labels, {rows});
    expect_int_range(fn, logits);
    const auto* lab = static_cast<const int64_t*>(labels.data());
    for (py::ssize_t i = 0; i < rows; ++i) {
        if (lab[i] < 0 || lab[i] >= cols) {
            throw py::value_error(std::string(fn) + ": labels[" + std::to_string(i) + "] = " + std::to_string(lab[i]) +
                                  " is out of range for " + std::to_string(cols) + " classes");
        }
    }
    float* d = nullptr;
    py::array dlogits;
    if (!dlogits_obj.is_none()) {
        dlogits = checked(fn, "dlogits", dlogits_obj, 2, true);
        expect_shape(fn, "dlogits", dlogits, {rows, cols});
        expect_no_alias(fn, "dlogits", dlogits, {{"logits", &logits}, {"labels", &labels}});
        if (totals) expect_no_alias(fn, "dlogits", dlogits, {{"totals", totals}});
        d = fptr_mut(dlogits);
    }
    mf::XentResult r;
    {
        py::gil_scoped_release nogil;
        r = mf::softmax_xent(fptr(logits), lab, static_cast<int>(rows), static_cast<int>(cols), d);
    }
    return r;
}

py::tuple softmax_xent(const py::object& logits_obj, const py::object& labels_obj, const py::object& dlogits_obj) {
    mf::XentResult r = checked_xent("softmax_xent", logits_obj, labels_obj, dlogits_obj, nullptr);
    return py::make_tuple(r.loss, r.correct);
}

// softmax_xent, with totals[0:2] += (loss sum, correct) and totals[2:4] = (mean loss, correct): the
// running metrics of training and evaluation stay in one float64 array that is read only when shown.
void xent_accumulate(const py::object& logits_obj, const py::object& labels_obj, const py::object& dlogits_obj,
                     const py::object& totals_obj) {
    const char* fn = "xent_accumulate";
    auto totals = checked(fn, "totals", totals_obj, 1, true, py::dtype::of<double>());
    expect_shape(fn, "totals", totals, {4});
    if (py::isinstance<py::array>(logits_obj)) {
        auto logits = py::reinterpret_borrow<py::array>(logits_obj);
        expect_no_alias(fn, "totals", totals, {{"logits", &logits}});
    }
    mf::XentResult r = checked_xent(fn, logits_obj, labels_obj, dlogits_obj, &totals);
    auto* t = static_cast<double*>(totals.mutable_data());
    const double rows = static_cast<double>(py::reinterpret_borrow<py::array>(logits_obj).shape(0));
    t[0] += r.loss * rows;
    t[1] += static_cast<double>(r.correct);
    t[2] = r.loss;
    t[3] = static_cast<double>(r.correct);
}

py::array take_rows(const py::object& src_obj, const py::object& idx_obj, const py::object& out_obj) {
    const char* fn = "take_rows";
    auto src = checked(fn, "src", src_obj, 2, false);
    auto idx = checked(fn, "idx", idx_obj, 1, false, py::dtype::of<int64_t>());
    auto out = checked(fn, "out", out_obj, 2, true);
    expect_shape(fn, "out", out, {idx.shape(0), src.shape(1)});
    expect_no_alias(fn, "out", out, {{"src", &src}, {"idx", &idx}});
    expect_int_range(fn, out);
    const auto* ix = static_cast<const int64_t*>(idx.data());
    const py::ssize_t rows = src.shape(0);
    for (py::ssize_t i = 0; i < idx.shape(0); ++i) {
        if (ix[i] < 0 || ix[i] >= rows) {
            throw py::index_error(std::string(fn) + ": idx[" + std::to_string(i) + "] = " + std::to_string(ix[i]) +
                                  " is out of bounds for " + std::to_string(rows) + " rows");
        }
    }
    {
        py::gil_scoped_release nogil;
        mf::take_rows(fptr(src), static_cast<int>(src.shape(1)), ix, static_cast<int>(idx.shape(0)), fptr_mut(out));
    }
    return out;
}

}  // namespace

MF_BIND_KERNELS(bind_mlp_ops) {
    cls.def("relu_backward", method(&relu_backward), py::arg("dy"), py::arg("y"), py::arg("out"),
            "out = dy * (y > 0); out may be dy.");
    cls.def("bias_grad", method(&bias_grad), py::arg("dy"), py::arg("out"), "out = dy.sum(axis=0)");
    cls.def("softmax_xent", method(&softmax_xent), py::arg("logits"), py::arg("labels"), py::arg("dlogits") = py::none(),
            "(mean cross-entropy, number correct); fills dlogits = (softmax - onehot) / rows unless None.");
    cls.def("xent_accumulate", method(&xent_accumulate), py::arg("logits"), py::arg("labels"), py::arg("dlogits"),
            py::arg("totals"), "softmax_xent, its loss sum and correct count added to the float64 totals[0:2], the "
            "batch's mean loss and count in totals[2:4].");
    cls.def("take_rows", method(&take_rows), py::arg("src"), py::arg("idx"), py::arg("out"), "out[i] = src[idx[i]]");
}

}  // namespace mfpy
