// Fused sLSTM kernels: the whole sequence in one launch, forward and backward (reverse time).
//
// Math: kernels/slstm/naive.py (the oracle). Interface and build macros: slstm.h.
//
// STATUS (2026-12-04): the GPU tests in tests/kernels/test_slstm_cuda.py (marker `gpu`) pass on an NVIDIA H200;
// timings in benchmarks/kernels/slstm_gpu.md. The CPU suite compiles this file with nvcc for sm_80 and sm_90.
//
// Grid: one block per (head, tile of BT = 16 batch rows). A block keeps its head's R (D x 4D) in shared memory
// for all T steps when it fits under the device's opt-in limit, else reads it from global memory (L2-resident);
// the state lives in registers; h_{t-1} (forward) and the gate gradients (backward) pass between steps through
// shared memory. Per step: recurrent matmul -> barrier -> pointwise (stabilised exponential gating) -> barrier.
//
//   forward  G (BT x 4D)  = h_{t-1} (BT x D) @ R (D x 4D), computed as G^T = R^T @ h^T (M = 4D, N = BT, K = D)
//   backward dh_{t-1} (BT x D) = dpre_t (BT x 4D) @ R^T,   computed as dh^T = R @ dpre^T (M = D, N = BT, K = 4D)
//
// bf16 builds run the matmuls on tensor cores (nvcuda::wmma 16x16x16, fp32 accumulate); f32 builds use FMAs.
// dR and db are not formed here: they are sums over (B, T) of outer products of h_{t-1} and dpre_t, which the
// host forms with one batched GEMM after this kernel (kernels/slstm/fused.py).

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
constexpr int G4 = 4 * D;                          // gate rows per head: i, f, z, o blocks of D
constexpr int BT = 16;                             // batch rows per block (one wmma N tile)
constexpr int NWARPS = (D / 4 < 16) ? D / 4 : 16;  // one 16-row tile of the 4D gate rows per warp, 16 warps max
constexpr int NT = NWARPS * 32;                    // threads per block
constexpr int NE = BT * D;                         // pointwise elements (batch row, unit) per block
constexpr int EPT = (NE + NT - 1) / NT;            // pointwise elements per thread

static_assert(D % 16 == 0 && D >= 16 && D <= 128, "SLSTM_D must be a multiple of 16 in 16..128");
static_assert(H >= 1, "SLSTM_H must be >= 1");

#if SLSTM_BF16
using io_t = __nv_bfloat16;
using r_t = __nv_bfloat16;
constexpr bool kSplit = SLSTM_SPLIT != 0;
constexpr int KS = 4;  // backward: the K = 4D reduction is split over KS warps; partial sums meet in the pointwise
#else
using io_t = float;
using r_t = float;
constexpr bool kSplit = false;
constexpr int KS = 1;
#endif

#include "slstm_common.cuh"

constexpr size_t R_BYTES = align128(sizeof(r_t) * D * G4);
// Forward: G (BT x 4D f32), h hi (BT x D), h lo (BT x D bf16, split builds).
constexpr size_t FWD_WORK = align128(sizeof(float) * BT * G4) + align128(sizeof(r_t) * BT * D) +
                            (kSplit ? align128(sizeof(__nv_bfloat16) * BT * D) : 0);
// Backward: dpre hi (BT x 4D), dpre lo (split builds), KS partial dh buffers (BT x D f32 each).
constexpr size_t BWD_WORK = align128(sizeof(r_t) * BT * G4) +
                            (kSplit ? align128(sizeof(__nv_bfloat16) * BT * G4) : 0) +
                            align128(sizeof(float) * KS * BT * D);


// Copies this head's R (D x 4D) into shared memory, 16 bytes per thread and step.
__device__ __forceinline__ void load_r(r_t* dst, const r_t* src) {
  constexpr int n16 = static_cast<int>(sizeof(r_t) * D * G4 / 16);
  const int4* s = reinterpret_cast<const int4*>(src);
  int4* d = reinterpret_cast<int4*>(dst);
  for (int i = threadIdx.x; i < n16; i += NT) d[i] = s[i];
}

// ------------------------------------------------------------------------------------------- recurrent matmuls

// G[n][m] = sum_k h[n][k] R[k][m] for n < BT, m < 4D.  R (D,4D) row-major, h (BT,D) row-major, G (BT,4D).
__device__ __forceinline__ void fwd_matmul(const r_t* R, const r_t* h_hi, const __nv_bfloat16* h_lo, float* G) {
#if SLSTM_BF16
  {
    using namespace nvcuda;
    const int warp = threadIdx.x >> 5;
    for (int mt = warp; mt < G4 / 16; mt += NWARPS) {
      wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
      wmma::fill_fragment(acc, 0.f);
#pragma unroll
      for (int kt = 0; kt < D / 16; ++kt) {
        // A = R^T tile (rows m = mt*16.., cols k = kt*16..): R^T(m, k) = R[k*4D + m], i.e. col-major, ld 4D.
        wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::col_major> a;
        wmma::load_matrix_sync(a, R + static_cast<size_t>(kt) * 16 * G4 + mt * 16, G4);
        // B = h^T tile (rows k, cols n): h^T(k, n) = h[n*D + k], i.e. col-major, ld D.
        wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::col_major> bh;
        wmma::load_matrix_sync(bh, h_hi + kt * 16, D);
        wmma::mma_sync(acc, a, bh, acc);
        if constexpr (kSplit) {
          wmma::load_matrix_sync(bh, h_lo + kt * 16, D);
          wmma::mma_sync(acc, a, bh, acc);
        }
      }
      // G^T(m, n) -> G[n*4D + m]: col-major store with ld 4D.
      wmma::store_matrix_sync(G + mt * 16, acc, G4, wmma::mem_col_major);
    }
  }
#else
  {
    // A warp shares one row n (4D is a multiple of 64): R reads are consecutive, h reads broadcast.
    for (int idx = threadIdx.x; idx < BT * G4; idx += NT) {
      const int n = idx / G4, m = idx - n * G4;
      const float* hrow = reinterpret_cast<const float*>(h_hi) + n * D;
      const float* rcol = reinterpret_cast<const float*>(R) + m;
      float acc = 0.f;
#pragma unroll 8
      for (int k = 0; k < D; ++k) acc = fmaf(hrow[k], rcol[k * G4], acc);
      G[idx] = acc;
    }
  }
#endif
}

// dh[ks][n][k] = sum_{m in split ks} dpre[n][m] R[k][m].  dpre (BT,4D) row-major, dh (KS,BT,D); the caller sums ks.
__device__ __forceinline__ void bwd_matmul(const r_t* R, const r_t* d_hi, const __nv_bfloat16* d_lo, float* dh) {
#if SLSTM_BF16
  {
    using namespace nvcuda;
    const int warp = threadIdx.x >> 5;
    constexpr int KT_PER_SPLIT = (G4 / 16) / KS;  // = D / 16
    for (int item = warp; item < (D / 16) * KS; item += NWARPS) {
      const int mt = item / KS, ks = item - mt * KS;
      wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
      wmma::fill_fragment(acc, 0.f);
#pragma unroll
      for (int kk = 0; kk < KT_PER_SPLIT; ++kk) {
        const int kt = ks * KT_PER_SPLIT + kk;
        // A = R tile (rows k = mt*16.., cols m = kt*16..): row-major, ld 4D.
        wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> a;
        wmma::load_matrix_sync(a, R + static_cast<size_t>(mt) * 16 * G4 + kt * 16, G4);
        // B = dpre^T tile (rows m, cols n): dpre^T(m, n) = dpre[n*4D + m], col-major, ld 4D.
        wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::col_major> bd;
        wmma::load_matrix_sync(bd, d_hi + kt * 16, G4);
        wmma::mma_sync(acc, a, bd, acc);
        if constexpr (kSplit) {
          wmma::load_matrix_sync(bd, d_lo + kt * 16, G4);
          wmma::mma_sync(acc, a, bd, acc);
        }
      }
      // dh^T(k, n) -> dh[ks][n*D + k]: col-major store with ld D.
      wmma::store_matrix_sync(dh + ks * NE + mt * 16, acc, D, wmma::mem_col_major);
    }
  }
#else
  {
    // Thread (n, k) walks m from a k-dependent start so that a warp's R reads hit 32 different banks.
    for (int idx = threadIdx.x; idx < NE; idx += NT) {
      const int n = idx / D, k = idx - n * D;
      const float* drow = reinterpret_cast<const float*>(d_hi) + n * G4;
      const float* rrow = reinterpret_cast<const float*>(R) + k * G4;
      float acc = 0.f;
      int m = k;
#pragma unroll 8
      for (int s = 0; s < G4; ++s) {
        acc = fmaf(rrow[m], drow[m], acc);
        m = (m + 1 == G4) ? 0 : m + 1;
      }
      dh[idx] = acc;
    }
  }
#endif
}

// ------------------------------------------------------------------------------------------------- forward

__global__ void __launch_bounds__(NT) slstm_fwd_kernel(FwdArgs a, int r_in_smem) {
  extern __shared__ __align__(128) unsigned char smem[];
  const int hd = blockIdx.x;
  const int64_t b0 = static_cast<int64_t>(blockIdx.y) * BT;
  const int64_t B = a.B, T = a.T;

  unsigned char* p = smem;
  const r_t* R = static_cast<const r_t*>(a.R) + static_cast<size_t>(hd) * D * G4;
  if (r_in_smem) {
    r_t* Rs = reinterpret_cast<r_t*>(p);
    p += R_BYTES;
    load_r(Rs, R);
    R = Rs;
  }
  float* G = reinterpret_cast<float*>(p);  // (BT, 4D) recurrent pre-activations of this step
  p += align128(sizeof(float) * BT * G4);
  r_t* h_hi = reinterpret_cast<r_t*>(p);  // (BT, D) h_{t-1} as matmul operand
  p += align128(sizeof(r_t) * BT * D);
  __nv_bfloat16* h_lo = kSplit ? reinterpret_cast<__nv_bfloat16*>(p) : nullptr;

  const io_t* gx = static_cast<const io_t*>(a.gates_x);
  io_t* hout = static_cast<io_t*>(a.h_out);

  float c[EPT], n[EPT], m[EPT], h_last[EPT], bias[EPT][4], gnext[EPT][4];
#pragma unroll
  for (int r = 0; r < EPT; ++r) {
    const int e = threadIdx.x + r * NT;
    const int bl = e / D, j = e - (e / D) * D;
    const int64_t bg = b0 + bl;
    const bool valid = e < NE && bg < B;
    float s[4] = {0.f, 0.f, 0.f, 0.f};  // c, n, m, h
    if (valid && a.state0 != nullptr) {
#pragma unroll
      for (int g = 0; g < 4; ++g) s[g] = a.state0[offs(g, bg, hd, j, B)];
    }
    if (valid && a.resets != nullptr && a.resets[bg * T]) s[0] = s[1] = s[2] = s[3] = 0.f;
    c[r] = s[0];
    n[r] = s[1];
    m[r] = s[2];
    h_last[r] = s[3];
#pragma unroll
    for (int g = 0; g < 4; ++g) {
      bias[r][g] = e < NE ? a.bias[(g * H + hd) * D + j] : 0.f;
      gnext[r][g] = valid ? to_f(gx[off5(bg, 0, g, hd, j, T)]) : 0.f;
    }
    if (e < NE) put_operand(h_hi, h_lo, e, valid ? s[3] : 0.f);
  }
  __syncthreads();

  for (int64_t t = 0; t < T; ++t) {
    fwd_matmul(R, h_hi, h_lo, G);
    __syncthreads();
#pragma unroll
    for (int r = 0; r < EPT; ++r) {
      const int e = threadIdx.x + r * NT;
      if (e >= NE) continue;
      const int bl = e / D, j = e - (e / D) * D;
      const int64_t bg = b0 + bl;
      const bool valid = bg < B;
      float pre[4];
#pragma unroll
      for (int g = 0; g < 4; ++g) pre[g] = G[bl * G4 + g * D + j] + bias[r][g] + gnext[r][g];
      const float lf = logsigmoid_f(pre[1]);
      float am = lf + m[r];  // the forget path's argument of the max
      if (!(n[r] > 0.f)) am = fminf(am, pre[0] + EMPTY_MARGIN);  // an empty memory (slstm.h)
      const float m_new = fmaxf(am, pre[0]);
      const float ig = expf(pre[0] - m_new);
      const float fg = expf(am - m_new);
      c[r] = fg * c[r] + ig * tanhf(pre[2]);
      n[r] = fg * n[r] + ig;
      m[r] = m_new;
      const float h = sigmoid_f(pre[3]) * c[r] / fmaxf(n[r], TINY);
      h_last[r] = h;
      bool reset_next = false;
      if (valid) {
        put(hout + off4(bg, t, hd, j, T), h);
        if (a.pre_save != nullptr) {
          const float st[4] = {c[r], n[r], m[r], h};
#pragma unroll
          for (int g = 0; g < 4; ++g) {
            a.pre_save[off5(bg, t, g, hd, j, T)] = pre[g];
            a.state_save[off5(bg, t, g, hd, j, T)] = st[g];
          }
        }
        if (t + 1 < T) {
          reset_next = a.resets != nullptr && a.resets[bg * T + t + 1];
#pragma unroll
          for (int g = 0; g < 4; ++g) gnext[r][g] = to_f(gx[off5(bg, t + 1, g, hd, j, T)]);
        }
      }
      if (reset_next) c[r] = n[r] = m[r] = 0.f;  // the state is cleared before step t + 1
      put_operand(h_hi, h_lo, e, (valid && !reset_next) ? h : 0.f);
    }
    __syncthreads();
  }

#pragma unroll
  for (int r = 0; r < EPT; ++r) {
    const int e = threadIdx.x + r * NT;
    const int bl = e / D, j = e - (e / D) * D;
    const int64_t bg = b0 + bl;
    if (e >= NE || bg >= B) continue;
    a.state_T[offs(0, bg, hd, j, B)] = c[r];
    a.state_T[offs(1, bg, hd, j, B)] = n[r];
    a.state_T[offs(2, bg, hd, j, B)] = m[r];
    a.state_T[offs(3, bg, hd, j, B)] = h_last[r];
  }
}

// ------------------------------------------------------------------------------------------------ backward

__global__ void __launch_bounds__(NT) slstm_bwd_kernel(BwdArgs a, int r_in_smem) {
  extern __shared__ __align__(128) unsigned char smem[];
  const int hd = blockIdx.x;
  const int64_t b0 = static_cast<int64_t>(blockIdx.y) * BT;
  const int64_t B = a.B, T = a.T;

  unsigned char* p = smem;
  const r_t* R = static_cast<const r_t*>(a.R) + static_cast<size_t>(hd) * D * G4;
  if (r_in_smem) {
    r_t* Rs = reinterpret_cast<r_t*>(p);
    p += R_BYTES;
    load_r(Rs, R);
    R = Rs;
  }
  r_t* d_hi = reinterpret_cast<r_t*>(p);  // (BT, 4D) dpre_t as matmul operand
  p += align128(sizeof(r_t) * BT * G4);
  __nv_bfloat16* d_lo = nullptr;
  if constexpr (kSplit) {
    d_lo = reinterpret_cast<__nv_bfloat16*>(p);
    p += align128(sizeof(__nv_bfloat16) * BT * G4);
  }
  float* dh_part = reinterpret_cast<float*>(p);  // (KS, BT, D) partial sums of dh_{t-1}

  const io_t* dh_out = static_cast<const io_t*>(a.dh);

  // Gradients carried backwards in time: w.r.t. c_t, n_t, m_t (registers) and h_t (from the matmul).
  float dc[EPT], dn[EPT], dm[EPT], dh_rec[EPT];
#pragma unroll
  for (int r = 0; r < EPT; ++r) {
    const int e = threadIdx.x + r * NT;
    const int bl = e / D, j = e - (e / D) * D;
    const int64_t bg = b0 + bl;
    const bool valid = e < NE && bg < B && a.dstate_T != nullptr;
    dc[r] = valid ? a.dstate_T[offs(0, bg, hd, j, B)] : 0.f;
    dn[r] = valid ? a.dstate_T[offs(1, bg, hd, j, B)] : 0.f;
    dm[r] = valid ? a.dstate_T[offs(2, bg, hd, j, B)] : 0.f;
    dh_rec[r] = valid ? a.dstate_T[offs(3, bg, hd, j, B)] : 0.f;
  }
  __syncthreads();  // R in shared memory

  for (int64_t t = T - 1; t >= 0; --t) {
#pragma unroll
    for (int r = 0; r < EPT; ++r) {
      const int e = threadIdx.x + r * NT;
      if (e >= NE) continue;
      const int bl = e / D, j = e - (e / D) * D;
      const int64_t bg = b0 + bl;
      float dpre[4] = {0.f, 0.f, 0.f, 0.f};
      if (bg < B) {
        if (t + 1 < T) {  // dh_t from step t + 1's matmul, unless the state was cleared before step t + 1
          float s = 0.f;
#pragma unroll
          for (int ks = 0; ks < KS; ++ks) s += dh_part[ks * NE + e];
          const bool reset_next = a.resets != nullptr && a.resets[bg * T + t + 1];
          dh_rec[r] = reset_next ? 0.f : s;
        }
        const float dh = dh_rec[r] + to_f(dh_out[off4(bg, t, hd, j, T)]);
        float pre[4];
#pragma unroll
        for (int g = 0; g < 4; ++g) pre[g] = a.pre_save[off5(bg, t, g, hd, j, T)];
        const bool reset = a.resets != nullptr && a.resets[bg * T + t];
        float c0 = 0.f, n0 = 0.f, m0 = 0.f;  // the state step t started from
        if (!reset) {
          if (t > 0) {
            c0 = a.state_save[off5(bg, t - 1, 0, hd, j, T)];
            n0 = a.state_save[off5(bg, t - 1, 1, hd, j, T)];
            m0 = a.state_save[off5(bg, t - 1, 2, hd, j, T)];
          } else if (a.state0 != nullptr) {
            c0 = a.state0[offs(0, bg, hd, j, B)];
            n0 = a.state0[offs(1, bg, hd, j, B)];
            m0 = a.state0[offs(2, bg, hd, j, B)];
          }
        }
        // Recompute the step.
        const float lf = logsigmoid_f(pre[1]);
        const float am0 = lf + m0;
        // The forget path's argument of the max, capped at i~ + EMPTY_MARGIN for an empty memory (slstm.h).
        const bool empty = !(n0 > 0.f);
        const float cap = pre[0] + EMPTY_MARGIN;
        const float am = (empty && am0 > cap) ? cap : am0;
        const float m_new = fmaxf(am, pre[0]);
        const float ig = expf(pre[0] - m_new);
        const float fg = expf(am - m_new);
        const float zt = tanhf(pre[2]);
        const float og = sigmoid_f(pre[3]);
        const float c = fg * c0 + ig * zt;
        const float n = fg * n0 + ig;
        const float inv = 1.f / fmaxf(n, TINY);
        // h = og * c / max(n, tiny)
        const float dct = dc[r] + dh * og * inv;
        const float dnt = dn[r] + (n >= TINY ? -dh * og * c * inv * inv : 0.f);
        dpre[3] = dh * c * inv * og * (1.f - og);
        // c = fg c0 + ig zt,  n = fg n0 + ig
        const float dig = dct * zt + dnt;
        const float dfg = dct * c0 + dnt * n0;
        dpre[2] = dct * ig * (1.f - zt * zt);
        // ig = exp(i~ - m_new), fg = exp(am - m_new), m_new = max(am, i~) (ties split the gradient, as torch)
        float di = dig * ig;
        float dam = dfg * fg;
        const float dmt = dm[r] - dig * ig - dfg * fg;
        if (am > pre[0]) {
          dam += dmt;
        } else if (am < pre[0]) {
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
        dpre[1] = dam * sigmoid_f(-pre[1]);  // d logsigmoid(x) / dx
        // Into the previous state; nothing flows across a reset.
        dc[r] = reset ? 0.f : dct * fg;
        dn[r] = reset ? 0.f : dnt * fg;
        dm[r] = reset ? 0.f : dam;
#pragma unroll
        for (int g = 0; g < 4; ++g) a.dpre[off5(bg, t, g, hd, j, T)] = dpre[g];
      }
#pragma unroll
      for (int g = 0; g < 4; ++g) put_operand(d_hi, d_lo, bl * G4 + g * D + j, dpre[g]);
    }
    __syncthreads();
    bwd_matmul(R, d_hi, d_lo, dh_part);
    __syncthreads();
  }

#pragma unroll
  for (int r = 0; r < EPT; ++r) {
    const int e = threadIdx.x + r * NT;
    const int bl = e / D, j = e - (e / D) * D;
    const int64_t bg = b0 + bl;
    if (e >= NE || bg >= B) continue;
    float s = 0.f;
#pragma unroll
    for (int ks = 0; ks < KS; ++ks) s += dh_part[ks * NE + e];
    const bool reset0 = a.resets != nullptr && a.resets[bg * T];
    a.dstate0[offs(0, bg, hd, j, B)] = dc[r];  // already zero after a reset at step 0
    a.dstate0[offs(1, bg, hd, j, B)] = dn[r];
    a.dstate0[offs(2, bg, hd, j, B)] = dm[r];
    a.dstate0[offs(3, bg, hd, j, B)] = reset0 ? 0.f : s;
  }
}

// ---------------------------------------------------------------------------------------------------- host

// Picks R's home (shared memory when it fits) and raises the kernel's dynamic shared memory limit.
template <typename Kernel>
std::string configure(Kernel kernel, size_t work, bool allow_r_in_smem, int* r_in_smem, size_t* bytes) {
  int dev = 0, optin = 0;
  cudaError_t err = cudaGetDevice(&dev);
  if (err == cudaSuccess) err = cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev);
  if (err != cudaSuccess) return std::string("slstm: device query failed: ") + cudaGetErrorString(err);
  *r_in_smem = allow_r_in_smem && R_BYTES + work <= static_cast<size_t>(optin);
  *bytes = *r_in_smem ? R_BYTES + work : work;
  if (*bytes > static_cast<size_t>(optin)) {
    return "slstm: the kernel needs " + std::to_string(*bytes) + " bytes of shared memory per block, the device " +
           "allows " + std::to_string(optin);
  }
  err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(*bytes));
  if (err != cudaSuccess) return std::string("slstm: cudaFuncSetAttribute failed: ") + cudaGetErrorString(err);
  return "";
}

std::string check_grid(int64_t B, int64_t T) {
  if (B < 1 || T < 1) return "slstm: B and T must be >= 1, got B=" + std::to_string(B) + ", T=" + std::to_string(T);
  if ((B + BT - 1) / BT > 65535) return "slstm: batch too large for one launch: B=" + std::to_string(B);
  return "";
}

}  // namespace

size_t forward_smem_bytes(bool r_in_smem) { return (r_in_smem ? R_BYTES : 0) + FWD_WORK; }
size_t backward_smem_bytes(bool r_in_smem) { return (r_in_smem ? R_BYTES : 0) + BWD_WORK; }
// Blocks never talk to each other here: no scratch memory.
size_t forward_workspace_bytes(int64_t, size_t* zero_bytes) { return *zero_bytes = 0; }
size_t backward_workspace_bytes(int64_t, size_t* zero_bytes) { return *zero_bytes = 0; }
const char* kernel_variant() { return "fused"; }

std::string forward(const FwdArgs& args, cudaStream_t stream) {
  std::string msg = check_grid(args.B, args.T);
  if (!msg.empty()) return msg;
  int r_in_smem = 0;
  size_t bytes = 0;
  msg = configure(slstm_fwd_kernel, FWD_WORK, args.allow_r_in_smem, &r_in_smem, &bytes);
  if (!msg.empty()) return msg;
  const dim3 grid(H, static_cast<unsigned>((args.B + BT - 1) / BT));
  slstm_fwd_kernel<<<grid, NT, bytes, stream>>>(args, r_in_smem);
  const cudaError_t err = cudaGetLastError();
  return err == cudaSuccess ? "" : std::string("slstm forward launch failed: ") + cudaGetErrorString(err);
}

std::string backward(const BwdArgs& args, cudaStream_t stream) {
  std::string msg = check_grid(args.B, args.T);
  if (!msg.empty()) return msg;
  int r_in_smem = 0;
  size_t bytes = 0;
  msg = configure(slstm_bwd_kernel, BWD_WORK, args.allow_r_in_smem, &r_in_smem, &bytes);
  if (!msg.empty()) return msg;
  const dim3 grid(H, static_cast<unsigned>((args.B + BT - 1) / BT));
  slstm_bwd_kernel<<<grid, NT, bytes, stream>>>(args, r_in_smem);
  const cudaError_t err = cudaGetLastError();
  return err == cudaSuccess ? "" : std::string("slstm backward launch failed: ") + cudaGetErrorString(err);
}

}  // namespace slstm
