// Torch binding of the sLSTM kernels (either variant, slstm.h): checks tensors against the build's configuration
// (slstm.h macros), allocates the outputs and the kernels' scratch memory, and launches on the current CUDA stream.
// Built by kernels/slstm/cuda_loader.py.
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/extension.h>

#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "slstm.h"

namespace {

constexpr int64_t kD = SLSTM_D;
constexpr int64_t kH = SLSTM_H;
const at::ScalarType kIoType = SLSTM_BF16 ? at::kBFloat16 : at::kFloat;

std::string shape_str(const at::Tensor& t) {
  std::string s = "(";
  for (int64_t i = 0; i < t.dim(); ++i) s += (i ? "," : "") + std::to_string(t.size(i));
  return s + ")";
}

void check(const at::Tensor& t, const char* name, at::ScalarType dtype, std::vector<int64_t> shape,
           const at::Tensor& like) {
  TORCH_CHECK(t.is_cuda(), "slstm cuda: ", name, " must be a CUDA tensor, got device ", t.device());
  TORCH_CHECK(t.device() == like.device(), "slstm cuda: ", name, " is on ", t.device(), ", gates_x on ",
              like.device());
  TORCH_CHECK(t.scalar_type() == dtype, "slstm cuda: ", name, " must have dtype ", dtype, ", got ",
              t.scalar_type());
  TORCH_CHECK(t.sizes().vec() == shape, "slstm cuda: ", name, " must have shape ", at::IntArrayRef(shape), ", got ",
              shape_str(t));
  TORCH_CHECK(t.is_contiguous(), "slstm cuda: ", name, " must be contiguous");
}

// R feeds wmma tile loads (32-byte aligned pointers) and 16-byte vector copies; the other tensors are read by element.
void check_r(const at::Tensor& R, const at::Tensor& like) {
  check(R, "R", kIoType, {kH, kD, 4 * kD}, like);
  TORCH_CHECK(reinterpret_cast<uintptr_t>(R.data_ptr()) % 32 == 0,
              "slstm cuda: R must be 32-byte aligned (a fresh allocation is)");
}

const uint8_t* resets_ptr(const std::optional<at::Tensor>& resets, int64_t B, int64_t T, const at::Tensor& like) {
  if (!resets.has_value()) return nullptr;
  const at::Tensor& r = *resets;
  TORCH_CHECK(r.scalar_type() == at::kBool, "slstm cuda: resets must be a bool tensor, got ", r.scalar_type());
  TORCH_CHECK(r.is_cuda() && r.device() == like.device(), "slstm cuda: resets must be on ", like.device());
  TORCH_CHECK(r.sizes().vec() == std::vector<int64_t>({B, T}) && r.is_contiguous(),
              "slstm cuda: resets must be a contiguous (B,T) = (", B, ",", T, ") tensor, got ", shape_str(r));
  return reinterpret_cast<const uint8_t*>(r.data_ptr<bool>());
}

const float* state_ptr(const std::optional<at::Tensor>& s, const char* name, int64_t B, const at::Tensor& like) {
  if (!s.has_value()) return nullptr;
  check(*s, name, at::kFloat, {4, B, kH, kD}, like);
  return s->data_ptr<float>();
}

// Scratch memory of `bytes` bytes whose first `zero_bytes` are zero (the multiblock kernels' barrier counters);
// an empty tensor when the kernel needs none.
at::Tensor workspace(size_t bytes, size_t zero_bytes, const at::Tensor& like) {
  at::Tensor ws = at::empty({static_cast<int64_t>(bytes)}, like.options().dtype(at::kByte));
  if (zero_bytes > 0) ws.narrow(0, 0, static_cast<int64_t>(zero_bytes)).zero_();
  return ws;
}

// gates_x (B,T,4,H,D), R (H,D,4D), bias (4,H,D) f32, state0 (4,B,H,D) f32 or None, resets (B,T) bool or None.
// Returns h (B,T,H,D), state_T (4,B,H,D), and pre_save, state_save (B,T,4,H,D) when save, else empty tensors.
// max_groups > 0 caps the block groups per launch of the multiblock kernel (tests of its batch loop).
std::vector<at::Tensor> forward(const at::Tensor& gates_x, const at::Tensor& R, const at::Tensor& bias,
                                const std::optional<at::Tensor>& state0, const std::optional<at::Tensor>& resets,
                                bool save, bool allow_r_in_smem, bool poison, int64_t max_groups) {
  TORCH_CHECK(gates_x.dim() == 5, "slstm cuda: gates_x must have shape (B,T,4,H,D), got ", shape_str(gates_x));
  const int64_t B = gates_x.size(0), T = gates_x.size(1);
  check(gates_x, "gates_x", kIoType, {B, T, 4, kH, kD}, gates_x);
  check_r(R, gates_x);
  check(bias, "bias", at::kFloat, {4, kH, kD}, gates_x);
  const c10::cuda::CUDAGuard guard(gates_x.device());
  const auto f32 = gates_x.options().dtype(at::kFloat);
  at::Tensor h = at::empty({B, T, kH, kD}, gates_x.options());
  at::Tensor state_T = at::empty({4, B, kH, kD}, f32);
  at::Tensor pre_save = save ? at::empty({B, T, 4, kH, kD}, f32) : at::empty({0}, f32);
  at::Tensor state_save = save ? at::empty({B, T, 4, kH, kD}, f32) : at::empty({0}, f32);
  if (poison) {  // tests: an element the kernel fails to write stays NaN
    for (at::Tensor* t : {&h, &state_T, &pre_save, &state_save}) t->fill_(std::numeric_limits<float>::quiet_NaN());
  }
  slstm::FwdArgs a{};
  a.gates_x = gates_x.data_ptr();
  a.R = R.data_ptr();
  a.bias = bias.data_ptr<float>();
  a.state0 = state_ptr(state0, "state0", B, gates_x);
  a.resets = resets_ptr(resets, B, T, gates_x);
  a.h_out = h.data_ptr();
  a.state_T = state_T.data_ptr<float>();
  a.pre_save = save ? pre_save.data_ptr<float>() : nullptr;
  a.state_save = save ? state_save.data_ptr<float>() : nullptr;
  size_t zero_bytes = 0;
  const size_t ws_bytes = slstm::forward_workspace_bytes(B, &zero_bytes);
  const at::Tensor ws = workspace(ws_bytes, zero_bytes, gates_x);
  a.workspace = ws_bytes > 0 ? ws.data_ptr() : nullptr;
  a.B = B;
  a.T = T;
  a.allow_r_in_smem = allow_r_in_smem;
  a.max_groups = max_groups;
  const std::string err = slstm::forward(a, c10::cuda::getCurrentCUDAStream().stream());
  TORCH_CHECK(err.empty(), err);
  return {h, state_T, pre_save, state_save};
}

// dh (B,T,H,D) in gates_x's dtype, dstate_T (4,B,H,D) f32 or None, and the forward's R, saved tensors, state0 and
// resets. Returns dpre (B,T,4,H,D) f32 and dstate0 (4,B,H,D) f32.
std::vector<at::Tensor> backward(const at::Tensor& dh, const std::optional<at::Tensor>& dstate_T, const at::Tensor& R,
                                 const at::Tensor& pre_save, const at::Tensor& state_save,
                                 const std::optional<at::Tensor>& state0, const std::optional<at::Tensor>& resets,
                                 bool allow_r_in_smem, bool poison, int64_t max_groups) {
  TORCH_CHECK(pre_save.dim() == 5, "slstm cuda: pre_save must have shape (B,T,4,H,D), got ", shape_str(pre_save),
              " (was the forward run with save=False?)");
  const int64_t B = pre_save.size(0), T = pre_save.size(1);
  check(pre_save, "pre_save", at::kFloat, {B, T, 4, kH, kD}, pre_save);
  check(state_save, "state_save", at::kFloat, {B, T, 4, kH, kD}, pre_save);
  check(dh, "dh", kIoType, {B, T, kH, kD}, pre_save);
  check_r(R, pre_save);
  const c10::cuda::CUDAGuard guard(pre_save.device());
  at::Tensor dpre = at::empty({B, T, 4, kH, kD}, pre_save.options());
  at::Tensor dstate0 = at::empty({4, B, kH, kD}, pre_save.options());
  if (poison) {
    dpre.fill_(std::numeric_limits<float>::quiet_NaN());
    dstate0.fill_(std::numeric_limits<float>::quiet_NaN());
  }
  slstm::BwdArgs a{};
  a.dh = dh.data_ptr();
  a.dstate_T = state_ptr(dstate_T, "dstate_T", B, pre_save);
  a.R = R.data_ptr();
  a.pre_save = pre_save.data_ptr<float>();
  a.state_save = state_save.data_ptr<float>();
  a.state0 = state_ptr(state0, "state0", B, pre_save);
  a.resets = resets_ptr(resets, B, T, pre_save);
  a.dpre = dpre.data_ptr<float>();
  a.dstate0 = dstate0.data_ptr<float>();
  size_t zero_bytes = 0;
  const size_t ws_bytes = slstm::backward_workspace_bytes(B, &zero_bytes);
  const at::Tensor ws = workspace(ws_bytes, zero_bytes, pre_save);
  a.workspace = ws_bytes > 0 ? ws.data_ptr() : nullptr;
  a.B = B;
  a.T = T;
  a.allow_r_in_smem = allow_r_in_smem;
  a.max_groups = max_groups;
  const std::string err = slstm::backward(a, c10::cuda::getCurrentCUDAStream().stream());
  TORCH_CHECK(err.empty(), err);
  return {dpre, dstate0};
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "sLSTM forward/backward kernels (whole sequence per launch), one build per (variant, D, H, dtype, arch)";
  m.attr("variant") = slstm::kernel_variant();
  m.attr("head_dim") = kD;
  m.attr("num_heads") = kH;
  m.attr("bf16") = static_cast<bool>(SLSTM_BF16);
  m.attr("split") = static_cast<bool>(SLSTM_SPLIT);
  m.def("forward", &forward, "sLSTM forward", py::arg("gates_x"), py::arg("R"), py::arg("bias"),
        py::arg("state0"), py::arg("resets"), py::arg("save"), py::arg("allow_r_in_smem") = true,
        py::arg("poison") = false, py::arg("max_groups") = 0);
  m.def("backward", &backward, "sLSTM backward (reverse time)", py::arg("dh"), py::arg("dstate_T"),
        py::arg("R"), py::arg("pre_save"), py::arg("state_save"), py::arg("state0"), py::arg("resets"),
        py::arg("allow_r_in_smem") = true, py::arg("poison") = false, py::arg("max_groups") = 0);
  m.def("forward_smem_bytes", &slstm::forward_smem_bytes, py::arg("r_in_smem"));
  m.def("backward_smem_bytes", &slstm::backward_smem_bytes, py::arg("r_in_smem"));
}
