// Plain C++ interface between the torch binding (slstm_binding.cpp) and the CUDA kernels. Two kernel variants
// implement it, and one build compiles the binding with exactly one of them:
//   slstm_fused.cu       "fused": one block per (head, 16 batch rows), the head's R resident; head dims 16..128
//   slstm_multiblock.cu  "multiblock": a head's gate columns spread over D / SLSTM_UNITS blocks that meet at a
//                        barrier every step; head dims 64..256 (multiples of 32)
//
// One build = one configuration, chosen by macros that the loader (kernels/slstm/cuda_loader.py) passes to both
// compilers:
//   SLSTM_D      head dim D (fused: 16..128, a multiple of 16; multiblock: 64..256, a multiple of 32)
//   SLSTM_H      number of heads H
//   SLSTM_BF16   1: bfloat16 gates_x/h, bfloat16 R, recurrent matmul on tensor cores (wmma, fp32 accumulate)
//                0: float32 gates_x/h, float32 R, recurrent matmul with fp32 FMAs
//   SLSTM_SPLIT  bf16 builds only: 1 (default) multiplies R by h (forward) and by the gate gradients (backward)
//                split into bf16 hi + lo parts (two mma per tile), so only R is rounded to bf16; 0: one bf16 mma.
//   SLSTM_UNITS  multiblock only: hidden units (of all four gates) per block, 32; D / SLSTM_UNITS blocks per head.
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
#ifndef SLSTM_UNITS
#define SLSTM_UNITS 32
#endif

namespace slstm {

// An empty memory (n = 0: the zero state, or the step after a reset) caps its stabiliser's carried term at the
// input gate + EMPTY_MARGIN, as EMPTY_MARGIN in kernels/slstm/naive.py does (see its module docstring): a = logf + m
// becomes min(a, i~ + EMPTY_MARGIN), so a first write far below m = 0 neither underflows nor overflows the backward.
constexpr float EMPTY_MARGIN = 40.f;

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
  void* workspace;         // scratch of forward_workspace_bytes(B) bytes (nullptr when that is 0)
  int64_t B;
  int64_t T;
  bool allow_r_in_smem;    // fused: false forces R to be read from global memory (tests that path); multiblock: unused
  int64_t max_groups;      // multiblock: at most this many block groups per launch (0: as many as fit; tests)
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
  void* workspace;         // scratch of backward_workspace_bytes(B) bytes (nullptr when that is 0)
  int64_t B;
  int64_t T;
  bool allow_r_in_smem;
  int64_t max_groups;
};

// Launch on `stream`; return "" on success, else a message naming what failed.
std::string forward(const FwdArgs& args, cudaStream_t stream);
std::string backward(const BwdArgs& args, cudaStream_t stream);

// Shared memory (bytes) the kernels ask for with R resident, and without; for the binding's diagnostics.
size_t forward_smem_bytes(bool r_in_smem);
size_t backward_smem_bytes(bool r_in_smem);

// Global scratch memory (bytes) a launch over B batch rows needs, 0 for none; its first *zero_bytes bytes must be
// zero when the launch starts (the binding allocates it per call).
size_t forward_workspace_bytes(int64_t B, size_t* zero_bytes);
size_t backward_workspace_bytes(int64_t B, size_t* zero_bytes);

// "fused" or "multiblock": which kernel variant this build holds.
const char* kernel_variant();

}  // namespace slstm
