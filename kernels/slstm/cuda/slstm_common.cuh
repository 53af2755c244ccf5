// Device helpers shared by the sLSTM kernels (slstm_fused.cu, slstm_multiblock.cu). Included inside each kernel
// file's anonymous namespace, after its build constants D and H, its dtypes io_t and r_t, kSplit and the to_f/put
// conversions, which differ per kernel and build.
#pragma once

constexpr float TINY = 1.17549435e-38f;  // float32's smallest normal number, as in naive.py

__host__ __device__ constexpr size_t align128(size_t x) { return (x + 127) & ~static_cast<size_t>(127); }

// Offset of (b, t, g, head, j) in a (B,T,4,H,D) tensor.
__device__ __forceinline__ int64_t off5(int64_t b, int64_t t, int g, int hd, int j, int64_t T) {
  return (((b * T + t) * 4 + g) * H + hd) * D + j;
}
// Offset of (b, t, head, j) in a (B,T,H,D) tensor.
__device__ __forceinline__ int64_t off4(int64_t b, int64_t t, int hd, int j, int64_t T) {
  return ((b * T + t) * H + hd) * D + j;
}
// Offset of (part, b, head, j) in a (4,B,H,D) state tensor.
__device__ __forceinline__ int64_t offs(int g, int64_t b, int hd, int j, int64_t B) {
  return ((g * B + b) * H + hd) * D + j;
}

// log(sigmoid(x)) = -softplus(-x) with torch's threshold 40, as naive._logsigmoid.
__device__ __forceinline__ float logsigmoid_f(float x) { return x < -40.f ? x : -log1pf(expf(-x)); }
__device__ __forceinline__ float sigmoid_f(float x) { return 1.f / (1.f + expf(-x)); }

// Stores v into the matmul operand buffer(s) at index e: hi = round(v); lo = round(v - hi) in split builds.
__device__ __forceinline__ void put_operand(r_t* hi, __nv_bfloat16* lo, int e, float v) {
  put(hi + e, v);
  if constexpr (kSplit) put(lo + e, v - to_f(hi[e]));
}
