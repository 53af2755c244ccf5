// Multi-block sLSTM kernels: head dims whose recurrent weights do not fit one block's shared memory (D = 192:
// R is 192 x 768 bf16 = 295 KB per head), forward and backward (reverse time), each a few launches per sequence.
//
// Math: kernels/slstm/naive.py (the oracle). Interface and build macros: slstm.h. Inputs, outputs and the saved
// tensors are those of slstm_fused.cu, so kernels/slstm/fused.py drives both variants the same way.
//
// STATUS: compiled with nvcc for sm_80 and sm_90 by the CPU suite (tests/kernels/test_slstm_cuda.py); the `gpu`
// tests there compare it with the reference on a GPU (see cuda/README.md for what has run where).
//
// Grid: one group of S = D / U blocks per (head, tile of BT = 16 batch rows), U = 32 hidden units per block. Block s
// owns units j in [s U, (s + 1) U) of all four gates, i.e. the 4U gate columns {g D + j}, and keeps that D x 4U
// slice of its head's R in shared memory for all T steps (bf16, D = 192: 52 KB). The c, n, m state of its units
// stays in registers (one (batch row, unit) per thread). Per step:
//
//   forward   G_s (BT x 4U) = h_{t-1} (BT x D) @ R[:, cols_s]   (computed as G^T = R_s^T @ h^T: M = 4U, N = BT, K = D)
//             gating on the block's BT x U units; its slice of h_t goes to the group's exchange buffer; group
//             barrier; every block reads all D units of h_t as the next step's operand.
//   backward  gating gradients of the block's units -> dpre_s (BT x 4U); the partial product
//             P_s (BT x D) = dpre_s @ R[:, cols_s]^T  (computed as P^T = R_s @ dpre_s^T: M = D, N = BT, K = 4U)
//             goes to the exchange buffer; group barrier; at the next (earlier) step each block sums the S partials
//             of its own units, always in the order s = 0..S-1, so the result does not depend on timing.
//
// Group barrier: one counter per group in global memory; a block arrives with a fence and an atomic add and waits
// with acquire loads until the counter reaches (barriers so far) x S. A group's blocks must therefore run at the same
// time: the host launches with cudaLaunchCooperativeKernel, which refuses a grid that cannot be resident all at
// once, and covers large batches with several launches of at most as many groups as fit. Exchange buffers are
// double-buffered by step parity, so one barrier per step suffices: a block writes parity p again only after every
// block of its group has passed the barrier that ends the reads of parity p. A wait of seconds (a protocol error)
// traps, so it ends as a launch error instead of hanging the process. Exchange reads bypass L1 (__ldcg).
//
// bf16 builds run both matmuls on tensor cores (nvcuda::wmma 16x16x16, fp32 accumulate) with the other operand
// (h, or dpre) split into bf16 hi + lo as in slstm_fused.cu, so that only R is rounded; f32 builds use FMAs. dR and
// db are formed by the host after the backward kernel (kernels/slstm/fused.py), as for the fused variant.

#include <cuda_bf16.h>
#include <mma.h>

#include "slstm.h"

namespace slstm {

// Conversions between the io/operand dtype and float (outside the anonymous namespace: one of each pair is unused
// per build).
inline __device__ float to_f(float x) { return x; }
inline __device__ float to_f(__nv_bfloat16 x) { return __bfloat162float(x); }
inline __device__ void put(float* p, float v) { *p = v; }
inline __device__ void put(__nv_bfloat16* p, float v) { *p = __float2bfloat16_rn(v); }

namespace {

constexpr int D = SLSTM_D;
constexpr int H = SLSTM_H;
constexpr int G4 = 4 * D;              // gate columns per head: i, f, z, o blocks of D
constexpr int U = SLSTM_UNITS;         // hidden units per block
constexpr int S = D / U;               // blocks per group (one group per head and batch tile)
constexpr int GU = 4 * U;              // gate columns per block
constexpr int BT = 16;                 // batch rows per group (one wmma N tile)
constexpr int NWARPS = 16;
constexpr int NT = NWARPS * 32;        // threads per block: one (batch row, unit) each in the pointwise
constexpr size_t COUNTER_STRIDE = 32;  // unsigned ints between two groups' counters: one 128-byte line each
constexpr long long SPIN_LIMIT = 1LL << 34;  // clock cycles a barrier may wait (several seconds) before trapping

static_assert(U == 32, "SLSTM_UNITS must be 32: warp = batch row, lane = unit in the pointwise");
static_assert(BT * U == NT, "one pointwise element per thread");
static_assert(D % U == 0 && D >= 2 * U && D <= 256, "SLSTM_D must be a multiple of 32 in 64..256 (multiblock)");
static_assert(H >= 1, "SLSTM_H must be >= 1");

#if SLSTM_BF16
using io_t = __nv_bfloat16;
using r_t = __nv_bfloat16;
constexpr bool kSplit = SLSTM_SPLIT != 0;
constexpr int KSF = 2;  // forward: the K = D reduction of each 16-row tile is split over 2 warps
constexpr int PAD = 8;  // elements (16 bytes): rows of an operand tile start 4 banks apart, so tile loads do not conflict
#else
using io_t = float;
using r_t = float;
constexpr bool kSplit = false;
constexpr int KSF = 1;
constexpr int PAD = 1;  // odd row length: a warp reading one column of R touches 32 banks
#endif

// Leading dimensions (elements) of the shared-memory operands; wmma needs multiples of 8 (16-bit) and 4 (float).
constexpr int R_LD = GU + PAD;   // R slice (D x 4U): row k = unit of h_{t-1}, column c = g U + unit
constexpr int H_LD = D + PAD;    // h_{t-1} operand (BT x D)
constexpr int DP_LD = GU + PAD;  // dpre operand (BT x 4U)
constexpr int G_LD = GU + 4;     // recurrent pre-activations (KSF x BT x 4U) f32

#include "slstm_common.cuh"
__host__ __device__ constexpr size_t align256(size_t x) { return (x + 255) & ~static_cast<size_t>(255); }

constexpr size_t R_BYTES = align128(sizeof(r_t) * D * R_LD);
constexpr size_t G_BYTES = align128(sizeof(float) * KSF * BT * G_LD);
constexpr size_t H_BYTES = align128(sizeof(r_t) * BT * H_LD);
constexpr size_t H_LO_BYTES = kSplit ? align128(sizeof(__nv_bfloat16) * BT * H_LD) : 0;
constexpr size_t DP_BYTES = align128(sizeof(r_t) * BT * DP_LD);
constexpr size_t DP_LO_BYTES = kSplit ? align128(sizeof(__nv_bfloat16) * BT * DP_LD) : 0;
constexpr size_t FWD_SMEM = R_BYTES + G_BYTES + H_BYTES + H_LO_BYTES;
constexpr size_t BWD_SMEM = R_BYTES + DP_BYTES + DP_LO_BYTES;

// Workspace: the groups' barrier counters (zeroed by the binding), then the exchange buffers, per group
//   forward  (2, BT, D) f32: h_t by step parity;  backward (2, S, BT, D) f32: the partials P_s by step parity.
__host__ __device__ constexpr int64_t num_groups(int64_t B) { return H * ((B + BT - 1) / BT); }
__host__ __device__ constexpr size_t counter_bytes(int64_t B) {
  return align256(static_cast<size_t>(num_groups(B)) * COUNTER_STRIDE * sizeof(unsigned));
}
constexpr size_t FWD_EXCHANGE = 2 * BT * D;      // floats per group
constexpr size_t BWD_EXCHANGE = 2 * S * BT * D;  // floats per group


// Copies the block's slice of its head's R (D x 4D, row-major) into shared memory: Rs[k][g U + u] = R[k][g D + s U + u].
// Once per launch, element by element (the slice's rows are 64-byte pieces of four different gate blocks).
__device__ __forceinline__ void load_r_slice(r_t* Rs, const r_t* R, int s) {
  for (int i = threadIdx.x; i < D * GU; i += NT) {
    const int k = i / GU, c = i - (i / GU) * GU;
    const int g = c / U, u = c - (c / U) * U;
    Rs[k * R_LD + c] = R[static_cast<size_t>(k) * G4 + g * D + s * U + u];
  }
}

__device__ __forceinline__ unsigned ld_acquire(const unsigned* p) {
  unsigned v;
  asm volatile("ld.acquire.gpu.global.u32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
  return v;
}

// Waits until all S blocks of the group have arrived here `round` times (round = 1, 2, ...). Everything the block
// wrote to global memory before is visible to the group's blocks after it.
__device__ __forceinline__ void group_barrier(unsigned* counter, unsigned round) {
  __syncthreads();
  if (threadIdx.x == 0) {
    __threadfence();
    atomicAdd(counter, 1u);
    const unsigned target = round * static_cast<unsigned>(S);
    const long long start = clock64();
    while (ld_acquire(counter) < target) {
      if (clock64() - start > SPIN_LIMIT) __trap();
    }
  }
  __syncthreads();
}

// ------------------------------------------------------------------------------------------- recurrent matmuls

// G[ks][n][m] = sum_{k in split ks} h[n][k] Rs[k][m] for n < BT, m < 4U; the pointwise sums the KSF parts.
__device__ __forceinline__ void fwd_matmul(const r_t* Rs, const r_t* h_hi, const __nv_bfloat16* h_lo, float* G) {
#if SLSTM_BF16
  {
    using namespace nvcuda;
    constexpr int MT = GU / 16;        // 16-row tiles of gate columns
    constexpr int KT = D / 16 / KSF;   // k tiles per warp
    static_assert(MT * KSF == NWARPS && (D / 16) % KSF == 0, "one (m tile, k split) per warp");
    const int warp = threadIdx.x >> 5;
    const int mt = warp % MT, ks = warp / MT;
    // Separate accumulators for the hi and lo halves of h: two independent mma chains.
    wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc, acc_lo;
    wmma::fill_fragment(acc, 0.f);
    wmma::fill_fragment(acc_lo, 0.f);
    // Unrolled by 2, not fully: a full unroll keeps every fragment of the chain live and reaches the 128-register cap.
#pragma unroll 2
    for (int kk = 0; kk < KT; ++kk) {
      const int kt = ks * KT + kk;
      // A = R_s^T tile (rows m = mt*16.., cols k = kt*16..): R_s^T(m, k) = Rs[k*R_LD + m], col-major, ld R_LD.
      wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::col_major> a;
      wmma::load_matrix_sync(a, Rs + kt * 16 * R_LD + mt * 16, R_LD);
      // B = h^T tile (rows k, cols n): h^T(k, n) = h[n*H_LD + k], col-major, ld H_LD.
      wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::col_major> bh;
      wmma::load_matrix_sync(bh, h_hi + kt * 16, H_LD);
      wmma::mma_sync(acc, a, bh, acc);
      if constexpr (kSplit) {
        wmma::load_matrix_sync(bh, h_lo + kt * 16, H_LD);
        wmma::mma_sync(acc_lo, a, bh, acc_lo);
      }
    }
    if constexpr (kSplit) {
#pragma unroll
      for (int i = 0; i < acc.num_elements; ++i) acc.x[i] += acc_lo.x[i];
    }
    // G^T(m, n) -> G[ks][n*G_LD + m]: col-major store, ld G_LD.
    wmma::store_matrix_sync(G + ks * BT * G_LD + mt * 16, acc, G_LD, wmma::mem_col_major);
  }
#else
  {
    // Thread (m, quad of rows): one R read feeds 4 FMAs; a warp reads 32 consecutive m (no conflicts), h broadcasts.
    static_assert(GU * (BT / 4) == NT, "one (column, row quad) per thread");
    const int m = threadIdx.x % GU, nq = threadIdx.x / GU;
    const float* rc = reinterpret_cast<const float*>(Rs) + m;
    const float* hr = reinterpret_cast<const float*>(h_hi) + nq * 4 * H_LD;
    float acc[4] = {0.f, 0.f, 0.f, 0.f};
#pragma unroll 4
    for (int k = 0; k < D; ++k) {
      const float r = rc[k * R_LD];
#pragma unroll
      for (int q = 0; q < 4; ++q) acc[q] = fmaf(hr[q * H_LD + k], r, acc[q]);
    }
#pragma unroll
    for (int q = 0; q < 4; ++q) G[(nq * 4 + q) * G_LD + m] = acc[q];
  }
#endif
}

// P[n][k] = sum_{m < 4U} dpre[n][m] Rs[k][m]: this block's part of dh_{t-1}, written to global memory (ld D).
__device__ __forceinline__ void bwd_matmul(const r_t* Rs, const r_t* d_hi, const __nv_bfloat16* d_lo, float* P) {
#if SLSTM_BF16
  {
    using namespace nvcuda;
    constexpr int MT = D / 16;   // 16-row tiles of k
    constexpr int KT = GU / 16;  // reduction tiles over the block's gate columns
    const int warp = threadIdx.x >> 5;
    for (int mt = warp; mt < MT; mt += NWARPS) {
      wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc, acc_lo;
      wmma::fill_fragment(acc, 0.f);
      wmma::fill_fragment(acc_lo, 0.f);
#pragma unroll 2
      for (int kt = 0; kt < KT; ++kt) {
        // A = R_s tile (rows k = mt*16.., cols m = kt*16..): row-major, ld R_LD.
        wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> a;
        wmma::load_matrix_sync(a, Rs + mt * 16 * R_LD + kt * 16, R_LD);
        // B = dpre^T tile (rows m, cols n): dpre^T(m, n) = dpre[n*DP_LD + m], col-major, ld DP_LD.
        wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::col_major> bd;
        wmma::load_matrix_sync(bd, d_hi + kt * 16, DP_LD);
        wmma::mma_sync(acc, a, bd, acc);
        if constexpr (kSplit) {
          wmma::load_matrix_sync(bd, d_lo + kt * 16, DP_LD);
          wmma::mma_sync(acc_lo, a, bd, acc_lo);
        }
      }
      if constexpr (kSplit) {
#pragma unroll
        for (int i = 0; i < acc.num_elements; ++i) acc.x[i] += acc_lo.x[i];
      }
      // P^T(k, n) -> P[n*D + k]: col-major store, ld D.
      wmma::store_matrix_sync(P + mt * 16, acc, D, wmma::mem_col_major);
    }
  }
#else
  {
    // Thread (k, quad of rows): a warp reads R at 32 consecutive k, R_LD apart (odd: 32 banks); dpre broadcasts.
    for (int idx = threadIdx.x; idx < D * (BT / 4); idx += NT) {
      const int k = idx % D, nq = idx / D;
      const float* rr = reinterpret_cast<const float*>(Rs) + k * R_LD;
      const float* dr = reinterpret_cast<const float*>(d_hi) + nq * 4 * DP_LD;
      float acc[4] = {0.f, 0.f, 0.f, 0.f};
#pragma unroll 4
      for (int m = 0; m < GU; ++m) {
        const float r = rr[m];
#pragma unroll
        for (int q = 0; q < 4; ++q) acc[q] = fmaf(dr[q * DP_LD + m], r, acc[q]);
      }
#pragma unroll
      for (int q = 0; q < 4; ++q) P[(nq * 4 + q) * D + k] = acc[q];
    }
  }
#endif
}

// ------------------------------------------------------------------------------------------------- forward

__global__ void __launch_bounds__(NT, 1) slstm_mb_fwd_kernel(FwdArgs a, long long group0) {
  extern __shared__ __align__(128) unsigned char smem[];
  const int s = blockIdx.x;
  const int64_t gid = group0 + blockIdx.y;
  const int hd = static_cast<int>(gid % H);
  const int64_t b0 = (gid / H) * BT;
  const int64_t B = a.B, T = a.T;
  const int n = threadIdx.x / U;   // batch row in the tile (= warp)
  const int jl = threadIdx.x % U;  // unit in the block's slice (= lane)
  const int j = s * U + jl;        // unit of the head
  const int64_t bg = b0 + n;
  const bool valid = bg < B;

  r_t* Rs = reinterpret_cast<r_t*>(smem);
  float* G = reinterpret_cast<float*>(smem + R_BYTES);
  r_t* h_hi = reinterpret_cast<r_t*>(smem + R_BYTES + G_BYTES);
  __nv_bfloat16* h_lo = kSplit ? reinterpret_cast<__nv_bfloat16*>(smem + R_BYTES + G_BYTES + H_BYTES) : nullptr;
  unsigned* counter = static_cast<unsigned*>(a.workspace) + gid * COUNTER_STRIDE;
  float* xh = reinterpret_cast<float*>(static_cast<unsigned char*>(a.workspace) + counter_bytes(B)) +
              gid * FWD_EXCHANGE;

  load_r_slice(Rs, static_cast<const r_t*>(a.R) + static_cast<size_t>(hd) * D * G4, s);
  // h_0 of all D units of the tile's rows (the matmul operand), zero where a reset clears step 0's state.
  for (int i = threadIdx.x; i < BT * D; i += NT) {
    const int row = i / D, k = i - (i / D) * D;
    const int64_t b = b0 + row;
    const bool cleared = b >= B || a.state0 == nullptr || (a.resets != nullptr && a.resets[b * T]);
    put_operand(h_hi, h_lo, row * H_LD + k, cleared ? 0.f : a.state0[offs(3, b, hd, k, B)]);
  }
  float c = 0.f, nst = 0.f, m = 0.f, h_last = 0.f;
  if (valid && a.state0 != nullptr && !(a.resets != nullptr && a.resets[bg * T])) {
    c = a.state0[offs(0, bg, hd, j, B)];
    nst = a.state0[offs(1, bg, hd, j, B)];
    m = a.state0[offs(2, bg, hd, j, B)];
    h_last = a.state0[offs(3, bg, hd, j, B)];
  }
  const io_t* gx = static_cast<const io_t*>(a.gates_x);
  io_t* hout = static_cast<io_t*>(a.h_out);
  float bias[4], gnext[4];
#pragma unroll
  for (int g = 0; g < 4; ++g) {
    bias[g] = a.bias[(g * H + hd) * D + j];
    gnext[g] = valid ? to_f(gx[off5(bg, 0, g, hd, j, T)]) : 0.f;
  }
  __syncthreads();

  for (int64_t t = 0; t < T; ++t) {
    fwd_matmul(Rs, h_hi, h_lo, G);
    __syncthreads();
    float pre[4];
#pragma unroll
    for (int g = 0; g < 4; ++g) {
      float rec = 0.f;
#pragma unroll
      for (int ks = 0; ks < KSF; ++ks) rec += G[(ks * BT + n) * G_LD + g * U + jl];
      pre[g] = rec + bias[g] + gnext[g];
    }
    const float lf = logsigmoid_f(pre[1]);
    float am = lf + m;  // the forget path's argument of the max
    if (!(nst > 0.f)) am = fminf(am, pre[0] + EMPTY_MARGIN);  // an empty memory (slstm.h)
    const float m_new = fmaxf(am, pre[0]);
    const float ig = expf(pre[0] - m_new);
    const float fg = expf(am - m_new);
    c = fg * c + ig * tanhf(pre[2]);
    nst = fg * nst + ig;
    m = m_new;
    const float h = sigmoid_f(pre[3]) * c / fmaxf(nst, TINY);
    h_last = h;
    bool reset_next = false;
    if (valid) {
      put(hout + off4(bg, t, hd, j, T), h);
      if (a.pre_save != nullptr) {
        const float st[4] = {c, nst, m, h};
#pragma unroll
        for (int g = 0; g < 4; ++g) {
          a.pre_save[off5(bg, t, g, hd, j, T)] = pre[g];
          a.state_save[off5(bg, t, g, hd, j, T)] = st[g];
        }
      }
      if (t + 1 < T) {
        reset_next = a.resets != nullptr && a.resets[bg * T + t + 1];
#pragma unroll
        for (int g = 0; g < 4; ++g) gnext[g] = to_f(gx[off5(bg, t + 1, g, hd, j, T)]);
      }
    }
    if (reset_next) c = nst = m = 0.f;  // the state is cleared before step t + 1
    if (t + 1 < T) {
      // Publish this block's units of the next operand; after the barrier, take all D units of it.
      float* x = xh + (t & 1) * BT * D;
      __stcg(x + n * D + j, (valid && !reset_next) ? h : 0.f);
      group_barrier(counter, static_cast<unsigned>(t + 1));
      for (int i = threadIdx.x; i < BT * D / 4; i += NT) {
        const float4 v = __ldcg(reinterpret_cast<const float4*>(x) + i);
        const int row = (4 * i) / D, k = 4 * i - row * D;
        r_t* hh = h_hi + row * H_LD + k;
        __nv_bfloat16* hl = kSplit ? h_lo + row * H_LD + k : nullptr;
        put_operand(hh, hl, 0, v.x);
        put_operand(hh, hl, 1, v.y);
        put_operand(hh, hl, 2, v.z);
        put_operand(hh, hl, 3, v.w);
      }
      __syncthreads();
    }
  }

  if (valid) {
    a.state_T[offs(0, bg, hd, j, B)] = c;
    a.state_T[offs(1, bg, hd, j, B)] = nst;
    a.state_T[offs(2, bg, hd, j, B)] = m;
    a.state_T[offs(3, bg, hd, j, B)] = h_last;
  }
}

// ------------------------------------------------------------------------------------------------ backward

// What the backward's step t reads from the forward, loaded one step ahead so that the loads overlap the matmul
// and the barrier of the step before.
struct StepIn {
  float pre[4];        // i~, f~, z~, o~
  float c0, n0, m0;    // the state step t started from (before a reset at t is applied)
  float dh;            // dL/dh_t from the output
  bool reset;          // the state was cleared before step t
};

__device__ __forceinline__ void load_step(const BwdArgs& a, int64_t t, int64_t bg, int hd, int j, StepIn& in) {
  const int64_t T = a.T, B = a.B;
#pragma unroll
  for (int g = 0; g < 4; ++g) in.pre[g] = a.pre_save[off5(bg, t, g, hd, j, T)];
  in.dh = to_f(static_cast<const io_t*>(a.dh)[off4(bg, t, hd, j, T)]);
  in.reset = a.resets != nullptr && a.resets[bg * T + t];
  in.c0 = in.n0 = in.m0 = 0.f;
  if (t > 0) {
    in.c0 = a.state_save[off5(bg, t - 1, 0, hd, j, T)];
    in.n0 = a.state_save[off5(bg, t - 1, 1, hd, j, T)];
    in.m0 = a.state_save[off5(bg, t - 1, 2, hd, j, T)];
  } else if (a.state0 != nullptr) {
    in.c0 = a.state0[offs(0, bg, hd, j, B)];
    in.n0 = a.state0[offs(1, bg, hd, j, B)];
    in.m0 = a.state0[offs(2, bg, hd, j, B)];
  }
}

__global__ void __launch_bounds__(NT, 1) slstm_mb_bwd_kernel(BwdArgs a, long long group0) {
  extern __shared__ __align__(128) unsigned char smem[];
  const int s = blockIdx.x;
  const int64_t gid = group0 + blockIdx.y;
  const int hd = static_cast<int>(gid % H);
  const int64_t b0 = (gid / H) * BT;
  const int64_t B = a.B, T = a.T;
  const int n = threadIdx.x / U;
  const int jl = threadIdx.x % U;
  const int j = s * U + jl;
  const int64_t bg = b0 + n;
  const bool valid = bg < B;

  r_t* Rs = reinterpret_cast<r_t*>(smem);
  r_t* d_hi = reinterpret_cast<r_t*>(smem + R_BYTES);
  __nv_bfloat16* d_lo = kSplit ? reinterpret_cast<__nv_bfloat16*>(smem + R_BYTES + DP_BYTES) : nullptr;
  unsigned* counter = static_cast<unsigned*>(a.workspace) + gid * COUNTER_STRIDE;
  float* xp = reinterpret_cast<float*>(static_cast<unsigned char*>(a.workspace) + counter_bytes(B)) +
              gid * BWD_EXCHANGE;

  load_r_slice(Rs, static_cast<const r_t*>(a.R) + static_cast<size_t>(hd) * D * G4, s);

  // Gradients carried backwards in time: w.r.t. c_t, n_t, m_t (registers) and h_t (from the partial sums).
  float dc = 0.f, dn = 0.f, dm = 0.f, dh_rec = 0.f;
  if (valid && a.dstate_T != nullptr) {
    dc = a.dstate_T[offs(0, bg, hd, j, B)];
    dn = a.dstate_T[offs(1, bg, hd, j, B)];
    dm = a.dstate_T[offs(2, bg, hd, j, B)];
    dh_rec = a.dstate_T[offs(3, bg, hd, j, B)];
  }
  StepIn cur{};
  if (valid) load_step(a, T - 1, bg, hd, j, cur);
  bool reset_next = false;  // the state was cleared before step t + 1
  __syncthreads();          // R in shared memory

  for (int64_t t = T - 1; t >= 0; --t) {
    float dpre[4] = {0.f, 0.f, 0.f, 0.f};
    StepIn nxt{};
    if (valid) {
      if (t + 1 < T) {  // dh_t from step t + 1's partials, unless the state was cleared before step t + 1
        const float* x = xp + ((t + 1) & 1) * S * BT * D + n * D + j;
        float sum = 0.f;
#pragma unroll
        for (int q = 0; q < S; ++q) sum += __ldcg(x + q * BT * D);
        dh_rec = reset_next ? 0.f : sum;
      }
      if (t > 0) load_step(a, t - 1, bg, hd, j, nxt);
      const float dh = dh_rec + cur.dh;
      const bool reset = cur.reset;
      const float c0 = reset ? 0.f : cur.c0, n0 = reset ? 0.f : cur.n0, m0 = reset ? 0.f : cur.m0;
      // Recompute the step.
      const float lf = logsigmoid_f(cur.pre[1]);
      const float am0 = lf + m0;
      // The forget path's argument of the max, capped at i~ + EMPTY_MARGIN for an empty memory (slstm.h).
      const bool empty = !(n0 > 0.f);
      const float cap = cur.pre[0] + EMPTY_MARGIN;
      const float am = (empty && am0 > cap) ? cap : am0;
      const float m_new = fmaxf(am, cur.pre[0]);
      const float ig = expf(cur.pre[0] - m_new);
      const float fg = expf(am - m_new);
      const float zt = tanhf(cur.pre[2]);
      const float og = sigmoid_f(cur.pre[3]);
      const float cc = fg * c0 + ig * zt;
      const float nn = fg * n0 + ig;
      const float inv = 1.f / fmaxf(nn, TINY);
      // h = og * c / max(n, tiny)
      const float dct = dc + dh * og * inv;
      const float dnt = dn + (nn >= TINY ? -dh * og * cc * inv * inv : 0.f);
      dpre[3] = dh * cc * inv * og * (1.f - og);
      // c = fg c0 + ig zt,  n = fg n0 + ig
      const float dig = dct * zt + dnt;
      const float dfg = dct * c0 + dnt * n0;
      dpre[2] = dct * ig * (1.f - zt * zt);
      // ig = exp(i~ - m_new), fg = exp(am - m_new), m_new = max(am, i~) (ties split the gradient, as torch)
      float di = dig * ig;
      float dam = dfg * fg;
      const float dmt = dm - dig * ig - dfg * fg;
      if (am > cur.pre[0]) {
        dam += dmt;
      } else if (am < cur.pre[0]) {
        di += dmt;
      } else {
        dam += 0.5f * dmt;
        di += 0.5f * dmt;
      }
      if (empty && am0 >= cap) {  // the cap's gradient goes to i~ (a tie splits it, as torch.minimum)
        const float to_i = am0 > cap ? dam : 0.5f * dam;
        di += to_i;
        dam -= to_i;
      }
      dpre[0] = di;
      dpre[1] = dam * sigmoid_f(-cur.pre[1]);  // d logsigmoid(x) / dx
      // Into the previous state; nothing flows across a reset.
      dc = reset ? 0.f : dct * fg;
      dn = reset ? 0.f : dnt * fg;
      dm = reset ? 0.f : dam;
#pragma unroll
      for (int g = 0; g < 4; ++g) a.dpre[off5(bg, t, g, hd, j, T)] = dpre[g];
    }
#pragma unroll
    for (int g = 0; g < 4; ++g) put_operand(d_hi, d_lo, n * DP_LD + g * U + jl, dpre[g]);
    __syncthreads();
    bwd_matmul(Rs, d_hi, d_lo, xp + (t & 1) * S * BT * D + s * BT * D);
    group_barrier(counter, static_cast<unsigned>(T - t));
    reset_next = cur.reset;
    cur = nxt;
  }

  if (valid) {
    const float* x = xp + n * D + j;  // step 0's partials: parity 0
    float sum = 0.f;
#pragma unroll
    for (int q = 0; q < S; ++q) sum += __ldcg(x + q * BT * D);
    a.dstate0[offs(0, bg, hd, j, B)] = dc;  // already zero after a reset at step 0
    a.dstate0[offs(1, bg, hd, j, B)] = dn;
    a.dstate0[offs(2, bg, hd, j, B)] = dm;
    a.dstate0[offs(3, bg, hd, j, B)] = reset_next ? 0.f : sum;  // reset_next now holds the reset before step 0
  }
}

// ---------------------------------------------------------------------------------------------------- host

// Sets the kernel's shared memory and launches it cooperatively over all groups, as many per launch as can be
// resident at once (never more than `max_groups` when that is > 0).
template <typename Args>
std::string launch(void (*kernel)(Args, long long), size_t smem, const Args& args, cudaStream_t stream,
                   const char* what) {
  if (args.B < 1 || args.T < 1) {
    return std::string("slstm ") + what + ": B and T must be >= 1, got B=" + std::to_string(args.B) +
           ", T=" + std::to_string(args.T);
  }
  if (args.T >= (int64_t{1} << 31) / S) {  // barrier counters count up to (T + 1) x S
    return std::string("slstm ") + what + ": T=" + std::to_string(args.T) + " is too long for one launch";
  }
  int dev = 0, optin = 0, sms = 0, coop = 0;
  cudaError_t err = cudaGetDevice(&dev);
  if (err == cudaSuccess) err = cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev);
  if (err == cudaSuccess) err = cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev);
  if (err == cudaSuccess) err = cudaDeviceGetAttribute(&coop, cudaDevAttrCooperativeLaunch, dev);
  if (err != cudaSuccess) return std::string("slstm: device query failed: ") + cudaGetErrorString(err);
  if (!coop) return std::string("slstm ") + what + ": the device does not support cooperative launches";
  if (smem > static_cast<size_t>(optin)) {
    return std::string("slstm ") + what + ": the multiblock kernel needs " + std::to_string(smem) +
           " bytes of shared memory per block, the device allows " + std::to_string(optin);
  }
  err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem));
  if (err != cudaSuccess) return std::string("slstm: cudaFuncSetAttribute failed: ") + cudaGetErrorString(err);
  int per_sm = 0;
  err = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, NT, smem);
  if (err != cudaSuccess) return std::string("slstm: occupancy query failed: ") + cudaGetErrorString(err);
  int64_t per_launch = static_cast<int64_t>(per_sm) * sms / S;
  if (args.max_groups > 0 && args.max_groups < per_launch) per_launch = args.max_groups;
  if (per_launch > 65535) per_launch = 65535;
  if (per_launch < 1) {
    return std::string("slstm ") + what + ": a group of " + std::to_string(S) + " blocks cannot be resident at once (" +
           std::to_string(per_sm) + " blocks per SM, " + std::to_string(sms) + " SMs)";
  }
  Args a = args;
  const int64_t groups = num_groups(args.B);
  for (long long g0 = 0; g0 < groups; g0 += per_launch) {
    const unsigned ny = static_cast<unsigned>(groups - g0 < per_launch ? groups - g0 : per_launch);
    void* params[] = {&a, &g0};
    err = cudaLaunchCooperativeKernel(kernel, dim3(S, ny), dim3(NT), params, smem, stream);
    if (err != cudaSuccess) {
      return std::string("slstm ") + what + " launch failed (grid " + std::to_string(S) + " x " + std::to_string(ny) +
             " blocks of " + std::to_string(NT) + " threads, " + std::to_string(smem) +
             " bytes of shared memory): " + cudaGetErrorString(err);
    }
  }
  return "";
}

}  // namespace

size_t forward_smem_bytes(bool) { return FWD_SMEM; }
size_t backward_smem_bytes(bool) { return BWD_SMEM; }

size_t forward_workspace_bytes(int64_t B, size_t* zero_bytes) {
  *zero_bytes = counter_bytes(B);
  return counter_bytes(B) + sizeof(float) * FWD_EXCHANGE * static_cast<size_t>(num_groups(B));
}

size_t backward_workspace_bytes(int64_t B, size_t* zero_bytes) {
  *zero_bytes = counter_bytes(B);
  return counter_bytes(B) + sizeof(float) * BWD_EXCHANGE * static_cast<size_t>(num_groups(B));
}

const char* kernel_variant() { return "multiblock"; }

std::string forward(const FwdArgs& args, cudaStream_t stream) {
  if (args.workspace == nullptr) return "slstm forward: the multiblock kernel needs its workspace";
  return launch(slstm_mb_fwd_kernel, FWD_SMEM, args, stream, "forward");
}

std::string backward(const BwdArgs& args, cudaStream_t stream) {
  if (args.workspace == nullptr) return "slstm backward: the multiblock kernel needs its workspace";
  return launch(slstm_mb_bwd_kernel, BWD_SMEM, args, stream, "backward");
}

}  // namespace slstm
