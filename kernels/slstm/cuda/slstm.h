// Plain C++ interface between the torch binding (slstm_binding.cpp) and the fused CUDA kernels (slstm_fused.cu).
//
// One build = one configuration, chosen by macros that the loader (kernels/slstm/cuda_loader.py) passes to both
// compilers:
//   SLSTM_D      head dim D (16..128, a multiple of 16)
//   SLSTM_H      number of heads H
//   SLSTM_BF16   1: bfloat16 gates_x/h, bfloat16 R, recurrent matmul on tensor cores (wmma, fp32 accumulate)
//                0: float32 gates_x/h, float32 R, recurrent matmul with fp32 FMAs
//   SLSTM_SPLIT  bf16 builds only: 1 (default) multiplies R by h (forward) and by the gate gradients (backward)
//                split into bf16 hi + lo parts (two mma per tile), so only R is rounded to bf16; 0: one bf16 mma.
// The state (c, n, m, h) is float32 in every build. Shapes (all contiguous):
//   gates_x (B,T,4,H,D)  R (H,D,4D)  bias (4,H,D) f32  state (4,B,H,D) f32 [c,n,m,h]  resets (B,T) uint8/bool
//   h (B,T,H,D)  pre_save / state_save (B,T,4,H,D) f32: pre-activations i~,f~,z~,o~ and the state after each step.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <string>

#ifndef SLSTM_D
#define SLSTM_D 64
#endif
#ifndef SLSTM_H
#define SLSTM_H 1
#endif
#ifndef SLSTM_BF16
#define SLSTM_BF16 1
#endif
#ifndef SLSTM_SPLIT
#define SLSTM_SPLIT 1
#endif

namespace slstm {

struct FwdArgs {
  const void* gates_x;     // (B,T,4,H,D), bf16 or f32 as built
  const void* R;           // (H,D,4D), bf16 or f32 as built
  const float* bias;       // (4,H,D)
  const float* state0;     // (4,B,H,D) or nullptr (zeros)
  const uint8_t* resets;   // (B,T) or nullptr (no resets)
  void* h_out;             // (B,T,H,D), gates_x's dtype
  float* state_T;          // (4,B,H,D): the state after the last step
  float* pre_save;         // (B,T,4,H,D) or nullptr (inference: nothing saved)
  float* state_save;       // (B,T,4,H,D) or nullptr; set together with pre_save
  int64_t B;
  int64_t T;
  bool allow_r_in_smem;    // false forces R to be read from global memory (tests the fallback path)
};

struct BwdArgs {
  const void* dh;          // (B,T,H,D) gradient of h, gates_x's dtype
  const float* dstate_T;   // (4,B,H,D) gradient of the final state, or nullptr (zeros)
  const void* R;           // (H,D,4D) as in the forward
  const float* pre_save;   // (B,T,4,H,D) from the forward
  const float* state_save; // (B,T,4,H,D) from the forward
  const float* state0;     // (4,B,H,D) or nullptr, as in the forward
  const uint8_t* resets;   // (B,T) or nullptr, as in the forward
  float* dpre;             // (B,T,4,H,D): gradient of the pre-activations = of gates_x (and, summed, of bias)
  float* dstate0;          // (4,B,H,D): gradient of the initial state
  int64_t B;
  int64_t T;
  bool allow_r_in_smem;
};

// Launch on `stream`; return "" on success, else a message naming what failed.
std::string forward(const FwdArgs& args, cudaStream_t stream);
std::string backward(const BwdArgs& args, cudaStream_t stream);

// Shared memory (bytes) the kernels ask for with R resident, and without; for the binding's diagnostics.
size_t forward_smem_bytes(bool r_in_smem);
size_t backward_smem_bytes(bool r_in_smem);

}  // namespace slstm
