// Packed, cache-blocked GEMM (the BLIS loop nest) around an MR x NR micro-kernel, with float32
// operands or (BF16) operands rounded to bfloat16 as they are packed.
//
//   for jc in N step NC           B panel  (KC x NC) lives in L3
//     for pc in K step KC
//       for ic in M step MC       A block  (MC x KC) lives in L2
//         pack B panel, pack A block   (full slivers of A are read in place instead,
//                                       see a_in_place)
//         for jr in NC step NR    B sliver (KC x NR) lives in L1 (in L2 for AVX-512, see gemm.cpp)
//           for ir in MC step MR
//             micro-kernel
//
// The loop nest runs on one thread; several threads take disjoint blocks of C and each runs it on
// its block (split_among_threads). Every element of C is produced by exactly one tile, summed over
// K in the same order whatever the thread count, so results are bitwise identical for 1, 2 or any
// number of threads. Products with a long K (k_split) are two such GEMMs over fixed halves of K,
// added in the same order on any number of threads.
//
// bf16 operands are packed in pairs along K: one 32-bit slot holds op(X)[., 2q] and op(X)[., 2q + 1]
// (the even one in the low half), the layout of the dot-product instructions (VDPBF16PS), and a
// sliver of kc values of K is ceil(kc / 2) slots. K blocks then start at even k, so the pairs are
// the same whatever the blocking and the thread split. Products accumulate in float32; the bias
// gradient's column sums (b_colsum) are taken from the float32 values, not the rounded ones.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <memory>

#include "gemm/gemm_kernel.hpp"
#include "gemm/pack_bf16.hpp"
#include "core/parallel.hpp"

namespace mf {

namespace {

// Below this many multiply-adds a second thread costs more (wake-up, barriers) than it saves.
constexpr long MIN_PARALLEL_MACS = 64L * 64 * 64;

struct AlignedFree {
    void operator()(float* p) const { std::free(p); }
};

// A per-calling-thread scratch buffer that only grows: GEMMs from a training loop reuse it.
float* scratch(std::unique_ptr<float, AlignedFree>& buf, size_t& cap, size_t n) {
    if (n > cap) {
        const size_t bytes = ((n * sizeof(float) + 63) / 64) * 64;
        buf.reset(static_cast<float*>(std::aligned_alloc(64, bytes)));
        if (!buf) throw std::bad_alloc();
        cap = n;
    }
    return buf.get();
}

// One MR-row sliver of op(A)[i0 : i0+mr, p0 : p0+kc], zero-padded to MR rows.
template <int MR>
void pack_a_sliver(const GemmArgs& g, int i0, int mr, int p0, int kc, float* dst) {
    if (g.trans_a) {  // op(A)[i, p] = A[p, i]: MR consecutive floats per p
        for (int p = 0; p < kc; ++p) {
            const float* src = g.A + (p0 + p) * g.lda + i0;
            float* d = dst + p * MR;
            if (mr == MR) {  // a constant count: inlined moves, not a memcpy call per k
                for (int r = 0; r < MR; ++r) d[r] = src[r];
            } else {
                for (int r = 0; r < mr; ++r) d[r] = src[r];
                for (int r = mr; r < MR; ++r) d[r] = 0.0f;
            }
        }
    } else if (mr == MR) {  // op(A)[i, p] = A[i, p]: MR row streams, written in sliver order
        const float* rows[MR];
        for (int r = 0; r < MR; ++r) rows[r] = g.A + (i0 + r) * g.lda + p0;
        for (int p = 0; p < kc; ++p)
            for (int r = 0; r < MR; ++r) dst[p * MR + r] = rows[r][p];
    } else {
        for (int r = 0; r < mr; ++r) {
            const float* src = g.A + (i0 + r) * g.lda + p0;
            for (int p = 0; p < kc; ++p) dst[p * MR + r] = src[p];
        }
        for (int r = mr; r < MR; ++r)
            for (int p = 0; p < kc; ++p) dst[p * MR + r] = 0.0f;
    }
}

// One NR-column sliver of op(B)[p0 : p0+kc, j0 : j0+nr], zero-padded to NR columns.
template <int NR>
void pack_b_sliver(const GemmArgs& g, int p0, int kc, int j0, int nr, float* dst) {
    if (g.trans_b) {  // op(B)[p, j] = B[j, p]: read each row of B along p
        for (int c = 0; c < nr; ++c) {
            const float* src = g.B + (j0 + c) * g.ldb + p0;
            for (int p = 0; p < kc; ++p) dst[p * NR + c] = src[p];
        }
        for (int c = nr; c < NR; ++c)
            for (int p = 0; p < kc; ++p) dst[p * NR + c] = 0.0f;
    } else {  // op(B)[p, j] = B[p, j]: NR consecutive floats per p
        for (int p = 0; p < kc; ++p) {
            const float* src = g.B + (p0 + p) * g.ldb + j0;
            float* d = dst + p * NR;
            if (nr == NR) {
                for (int c = 0; c < NR; ++c) d[c] = src[c];
            } else {
                for (int c = 0; c < nr; ++c) d[c] = src[c];
                for (int c = nr; c < NR; ++c) d[c] = 0.0f;
            }
        }
    }
}

// The bf16 slivers: the same shapes in slots of two K values (see the top of this file and
// pack_bf16.hpp). Slot (p, r) holds op(A)[i0 + r, p0 + 2p (+1)].
template <int MR>
void pack_a_sliver_bf16(const GemmArgs& g, PairPacker pack, int i0, int mr, int p0, int kc, float* dst) {
    if (g.trans_a) pack(g.A + p0 * g.lda + i0, g.lda, 1, kc, mr, MR, dst, nullptr);
    else pack(g.A + i0 * g.lda + p0, 1, g.lda, kc, mr, MR, dst, nullptr);
}

// Slot (p, c) holds op(B)[p0 + 2p (+1), j0 + c]; with sums, sums[c] += the float32 values, in k order.
template <int NR>
void pack_b_sliver_bf16(const GemmArgs& g, PairPacker pack, int p0, int kc, int j0, int nr, float* dst, float* sums) {
    if (g.trans_b) pack(g.B + j0 * g.ldb + p0, 1, g.ldb, kc, nr, NR, dst, sums);
    else pack(g.B + p0 * g.ldb + j0, g.ldb, 1, kc, nr, NR, dst, sums);
}

// sums[c] += column c of a packed sliver (kc rows of NR), in k order. The zero padding of an
// edge sliver lands in slots past the matrix, which are never read back.
template <int NR>
void add_sliver_sums(const float* sliver, int kc, float* sums) {
    for (int p = 0; p < kc; ++p)
        for (int c = 0; c < NR; ++c) sums[c] += sliver[p * NR + c];
}

// C = beta * C (or 0) then the epilogue: the whole GEMM when K == 0.
void scale_only(const GemmArgs& g) {
    for (int i = 0; i < g.M; ++i) {
        float* crow = g.C + i * g.ldc;
        for (int j = 0; j < g.N; ++j) crow[j] = g.beta == 0.0f ? 0.0f : g.beta * crow[j];
        apply_epilogue_row(g.ep, i, 0, g.N, crow);
    }
    if (g.b_colsum) b_column_sums(g);
}

inline int ceil_div(int a, int b) { return (a + b - 1) / b; }

}  // namespace

template <int MR, int NR, bool BF16>
void sgemm_blocked(const GemmArgs& g, MicroKernel kernel, const Blocking& blk, PairPacker pack);

namespace {

// How unevenly `units` tiles fall on `parts` threads: the busiest thread's share over the mean.
double imbalance(int units, int parts) { return static_cast<double>(ceil_div(units, parts)) * parts / units; }

// Threads take disjoint blocks of whole tile columns (or rows) of C, each block a single-threaded
// GEMM of its own: they never wait for each other between K blocks, which on the small products
// of a training step (128 x 128 x 784) cost more than the packing they shared. Every element is
// still made by the same tile with the same K order, so results do not change with the threads.
template <int MR, int NR, bool BF16>
void split_among_threads(const GemmArgs& g, MicroKernel kernel, const Blocking& blk, PairPacker pack, int threads) {
    const int col_units = ceil_div(g.N, NR), row_units = ceil_div(g.M, MR);
    const int col_parts = std::min(threads, col_units), row_parts = std::min(threads, row_units);
    const double col_cost = imbalance(col_units, col_parts) / col_parts, row_cost = imbalance(row_units, row_parts) / row_parts;
    const bool by_cols = col_cost < row_cost || (col_cost == row_cost && col_units >= row_units);
    const int units = by_cols ? col_units : row_units, parts = by_cols ? col_parts : row_parts;
#ifdef MNISTFAST_HAVE_OPENMP
#pragma omp parallel for num_threads(parts) schedule(static)
#endif
    for (int t = 0; t < parts; ++t) {
        const int u0 = static_cast<int>(static_cast<long>(units) * t / parts);
        const int u1 = static_cast<int>(static_cast<long>(units) * (t + 1) / parts);
        GemmArgs s = g;
        s.single_thread = true;
        if (by_cols) {
            const int j0 = u0 * NR, j1 = std::min(g.N, u1 * NR);
            s.N = j1 - j0;
            s.B += g.trans_b ? j0 * g.ldb : j0;
            s.C += j0;
            if (s.ep.bias) s.ep.bias += j0;
            if (s.ep.mask) s.ep.mask += j0;
            if (s.b_colsum) s.b_colsum += j0;
        } else {
            const int i0 = u0 * MR, i1 = std::min(g.M, u1 * MR);
            s.M = i1 - i0;
            s.A += g.trans_a ? i0 : i0 * g.lda;
            s.C += i0 * g.ldc;
            if (s.ep.mask) s.ep.mask += i0 * s.ep.ldmask;
            if (t > 0) s.b_colsum = nullptr;  // every part packs all of B: the first one sums it
        }
        sgemm_blocked<MR, NR, BF16>(s, kernel, blk, pack);
    }
}

// Products with a long K and a small C (an MLP's first layer, 128 x 128 x 784) are summed as two
// halves of K, each a single-threaded GEMM of its own, then added:
//   C = epilogue((alpha * A0 B0 + beta * C) + alpha * A1 B1)
// On two threads each reads half of A and half of B, where a split of C's columns had each read
// all of A. And the half of K a thread takes is the block of rows that split_among_threads gives
// the same thread in the transposed product over that dimension (the weight gradient), so those
// weight rows stay in one core's cache from one step to the next. The split is two fixed halves
// whatever the thread count, so results still do not depend on it.
constexpr int K_SPLIT_RATIO = 4;  // K at least this many times the longer side of C

template <int MR>
bool k_split_pays(const GemmArgs& g, long macs) {
    return !g.single_thread && !g.b_colsum && macs >= MIN_PARALLEL_MACS && g.K >= 2 * MR &&
           g.K >= K_SPLIT_RATIO * std::max(g.M, g.N);
}

// Row i of C += the second half's partial, then the epilogue.
void add_partial_row(const GemmArgs& g, int i, const float* partial) {
    float* c = g.C + i * g.ldc;
    const float* p = partial + static_cast<long>(i) * g.N;
    for (int j = 0; j < g.N; ++j) c[j] += p[j];
    apply_epilogue_row(g.ep, i, 0, g.N, c);
}

template <int MR, int NR, bool BF16>
void k_split(const GemmArgs& g, MicroKernel kernel, const Blocking& blk, PairPacker pack) {
    // The first half ends where split_among_threads would end a 2-way split of K rows (MR is even:
    // a bf16 pair never straddles the halves).
    static_assert(MR % 2 == 0, "k_split's halves must start at even k");
    const int k0 = MR * (ceil_div(g.K, MR) / 2);
    thread_local std::unique_ptr<float, AlignedFree> part_buf;
    thread_local size_t part_cap = 0;
    float* partial = scratch(part_buf, part_cap, static_cast<size_t>(g.M) * g.N);
    const int threads = max_threads();
    // More than two threads split each half's columns too (at tile boundaries: no change in bits).
    const int units = ceil_div(g.N, NR);
    const int groups = std::max(1, std::min(threads / 2, units));
    const int tasks = 2 * groups;
#ifdef MNISTFAST_HAVE_OPENMP
#pragma omp parallel num_threads(std::min(threads, tasks))
#endif
    {
#ifdef MNISTFAST_HAVE_OPENMP
#pragma omp for schedule(static)
#endif
        for (int t = 0; t < tasks; ++t) {
            const int half = t / groups, grp = t % groups;
            const int j0 = NR * static_cast<int>(static_cast<long>(units) * grp / groups);
            const int j1 = std::min(g.N, NR * static_cast<int>(static_cast<long>(units) * (grp + 1) / groups));
            const int p0 = half == 0 ? 0 : k0;
            GemmArgs s = g;
            s.single_thread = true;
            s.ep = Epilogue{};
            s.K = half == 0 ? k0 : g.K - k0;
            s.N = j1 - j0;
            s.A += g.trans_a ? p0 * g.lda : p0;
            s.B += g.trans_b ? j0 * g.ldb + p0 : p0 * g.ldb + j0;
            if (half == 0) {
                s.C += j0;
            } else {
                s.C = partial + j0;
                s.ldc = g.N;
                s.beta = 0.0f;
            }
            sgemm_blocked<MR, NR, BF16>(s, kernel, blk, pack);
        }
#ifdef MNISTFAST_HAVE_OPENMP
#pragma omp for schedule(static)
#endif
        for (int i = 0; i < g.M; ++i) add_partial_row(g, i, partial);
    }
}

}  // namespace

template <int MR, int NR, bool BF16>
void sgemm_blocked(const GemmArgs& g, MicroKernel kernel, const Blocking& blk, PairPacker pack) {
    const int MC = blk.mc, KC = blk.kc, NC = blk.nc;
    if (g.N == 0) return;
    if (g.M == 0) {
        if (g.b_colsum) b_column_sums(g);
        return;
    }
    if (g.K == 0) return scale_only(g);
    const long macs = static_cast<long>(g.M) * g.N * g.K;
    if (k_split_pays<MR>(g, macs)) return k_split<MR, NR, BF16>(g, kernel, blk, pack);
    const int threads = (g.single_thread || macs < MIN_PARALLEL_MACS) ? 1 : max_threads();
    if (threads > 1) return split_among_threads<MR, NR, BF16>(g, kernel, blk, pack, threads);

    // Equal K blocks of at most KC: at KC = 256, K = 784 becomes 4 x 196 rather than 3 x 256 + 16.
    // A slot holds K_PER_SLOT values of K, and blocks start at a multiple of it.
    constexpr int K_PER_SLOT = BF16 ? 2 : 1;
    const int kc_max = ceil_div(ceil_div(g.K, ceil_div(g.K, KC)), K_PER_SLOT) * K_PER_SLOT;
    const int k_blocks = ceil_div(g.K, kc_max);
    const int slots_max = kc_max / K_PER_SLOT;
    const int mc_max = std::min(MC, ceil_div(g.M, MR) * MR);
    const int nc_max = std::min(NC, ceil_div(g.N, NR) * NR);

    thread_local std::unique_ptr<float, AlignedFree> a_buf, b_buf, sum_buf;
    thread_local size_t a_cap = 0, b_cap = 0, sum_cap = 0;
    float* a_pack = scratch(a_buf, a_cap, static_cast<size_t>(mc_max) * slots_max);
    float* b_pack = scratch(b_buf, b_cap, static_cast<size_t>(nc_max) * slots_max);
    float* sums = g.b_colsum ? scratch(sum_buf, sum_cap, static_cast<size_t>(nc_max)) : nullptr;

    // Full slivers of A are read where they lie rather than packed: for op(A) = A^T the MR values
    // of each k are already together; for op(A) = A the kernel reads MR row streams (it broadcasts
    // one value at a time anyway, so packing would only copy). Not when the row stride is a
    // multiple of 1 KiB, which would fold the sliver's rows onto a few L1 sets. (op(B) = B would
    // qualify too, but its strides - 512 B for a 128-wide layer, 4 KiB at N = 1024 - are exactly
    // the aliasing kind: measured slower, so B is always packed.) bf16 operands are always packed:
    // packing is where they are rounded.
    const bool a_in_place = !BF16 && (g.lda % 256) != 0;

    {
        for (int jc = 0; jc < g.N; jc += NC) {
            const int nc = std::min(NC, g.N - jc);
            const int n_slivers = ceil_div(nc, NR);
            if (sums)
                for (int j = 0; j < n_slivers * NR; ++j) sums[j] = 0.0f;
            for (int kb = 0; kb < k_blocks; ++kb) {
                const int pc = kb * kc_max;
                const int kc = std::min(kc_max, g.K - pc);
                const int slots = ceil_div(kc, K_PER_SLOT);
                for (int ic = 0; ic < g.M; ic += MC) {
                    const int mc = std::min(MC, g.M - ic);
                    const int m_slivers = ceil_div(mc, MR);
                    if (ic == 0) {
                        for (int s = 0; s < n_slivers; ++s) {
                            const int j0 = jc + s * NR, nr = std::min(NR, nc - s * NR);
                            float* dst = b_pack + s * NR * slots;
                            if constexpr (BF16) {
                                pack_b_sliver_bf16<NR>(g, pack, pc, kc, j0, nr, dst, sums ? sums + s * NR : nullptr);
                            } else {
                                pack_b_sliver<NR>(g, pc, kc, j0, nr, dst);
                                if (sums) add_sliver_sums<NR>(dst, kc, sums + s * NR);
                            }
                        }
                    }
                    for (int s = 0; s < m_slivers; ++s) {
                        const int mr = std::min(MR, mc - s * MR);
                        if (a_in_place && mr == MR) continue;
                        float* dst = a_pack + s * MR * slots;
                        if constexpr (BF16) pack_a_sliver_bf16<MR>(g, pack, ic + s * MR, mr, pc, kc, dst);
                        else pack_a_sliver<MR>(g, ic + s * MR, mr, pc, kc, dst);
                    }
                    // Tiles in jr-major order, so consecutive tiles share a B sliver.
                    for (int t = 0; t < n_slivers * m_slivers; ++t) {
                        const int jr = t / m_slivers, ir = t % m_slivers;
                        const int i0 = ic + ir * MR, j0 = jc + jr * NR;
                        TileStore st;
                        st.C = g.C + i0 * g.ldc + j0;
                        st.ldc = g.ldc;
                        st.mr = std::min(MR, g.M - i0);
                        st.nr = std::min(NR, g.N - j0);
                        st.i0 = i0;
                        st.j0 = j0;
                        st.alpha = g.alpha;
                        st.beta = g.beta;
                        st.first_k = kb == 0;
                        st.last_k = kb == k_blocks - 1;
                        st.ep = &g.ep;
                        if (a_in_place && st.mr == MR) {
                            if (g.trans_a) kernel(kc, g.A + pc * g.lda + i0, 1, g.lda, b_pack + jr * NR * slots, NR, st);
                            else kernel(kc, g.A + i0 * g.lda + pc, g.lda, 1, b_pack + jr * NR * slots, NR, st);
                        } else {
                            kernel(slots, a_pack + ir * MR * slots, 1, MR, b_pack + jr * NR * slots, NR, st);
                        }
                    }
                }
            }
            if (sums) {
                float* out = g.b_colsum + jc;
                for (int j = 0; j < nc; ++j)
                    out[j] = g.beta == 0.0f ? g.alpha * sums[j] : g.alpha * sums[j] + g.beta * out[j];
            }
        }
    }
}

template void sgemm_blocked<MR_YMM, NR_YMM, false>(const GemmArgs&, MicroKernel, const Blocking&, PairPacker);
template void sgemm_blocked<MR_ZMM, NR_ZMM, false>(const GemmArgs&, MicroKernel, const Blocking&, PairPacker);
template void sgemm_blocked<MR_YMM, NR_YMM, true>(const GemmArgs&, MicroKernel, const Blocking&, PairPacker);
template void sgemm_blocked<MR_ZMM, NR_ZMM, true>(const GemmArgs&, MicroKernel, const Blocking&, PairPacker);

}  // namespace mf
