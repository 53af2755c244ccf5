// sLSTM recurrence on the CPU: the whole sequence, forward and backward (reverse time), in plain C++.
//
// Built on first use by kernels/slstm/cpu_loader.py with the system compiler (no torch headers, so a build takes
// seconds) and called through ctypes with raw pointers to contiguous tensors. The math is the reference's
// (kernels/slstm/naive.py) and the backward is the CUDA kernel's (cuda/slstm_fused.cu), step for step.
//
// Every (batch row, head) pair runs its own recurrence: the recurrent weights are block-diagonal per head, so pairs
// never meet. Pairs are split over `nthreads` threads; within a pair the D x 4D product with R runs over contiguous
// rows of R (forward) or of R transposed (backward), which the compiler vectorises.
//
// Layouts (row-major, contiguous):
//   pre_x, pre_save, state_save, dpre: (B,T,4,H,D)   gates in the order i, f, z, o; states in the order c, n, m, h
//   h_out, dh: (B,T,H,D)      state0, state_T, dstate_T, dstate0: (4,B,H,D)      resets: (B,T) bytes, 1 = clear
//   R: (H,D,4D)  row k of head hd holds the weights from h[k] to the 4D pre-activations
//   RT: (H,4D,D) R transposed per head (the backward's dh_{t-1} = dpre_t @ R^T)
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <thread>
#include <vector>

namespace {

constexpr double kTiny = 1.17549435082228750797e-38;  // float32's smallest normal number, as in naive.py
constexpr double kEmptyMargin = 40.0;                  // naive.EMPTY_MARGIN

// log(sigmoid(x)) = -softplus(-x) with torch's threshold 40, as naive._logsigmoid.
template <typename S>
inline S logsigmoid(S x) {
  return x < S(-40) ? x : -std::log1p(std::exp(-x));
}
template <typename S>
inline S sigmoid(S x) {
  return S(1) / (S(1) + std::exp(-x));
}

// The stabilised input and forget gates of one unit, from the pre-activations i~ and f~ and the state (n0, m0) the
// step starts from; the forward computes them and the backward recomputes them.
template <typename S>
struct Gates {
  S am0;       // logsigmoid(f~) + m0: the forget path's argument of the max
  bool empty;  // n0 = 0: an empty memory, whose argument is capped (see naive.py)
  S cap;       // i~ + EMPTY_MARGIN
  S am;        // the argument after the cap
  S ig, fg;    // exp(i~ - m), exp(am - m), with m = max(am, i~)
};

template <typename S>
inline Gates<S> stabilised_gates(S ip, S fp, S n0, S m0) {
  Gates<S> g;
  g.am0 = logsigmoid(fp) + m0;
  g.empty = !(n0 > S(0));
  g.cap = ip + S(kEmptyMargin);
  g.am = (g.empty && g.am0 > g.cap) ? g.cap : g.am0;
  // One of the two exponents is exactly 0, so one exp suffices (exp(0) = 1 exactly: the values are the reference's).
  if (g.am > ip) {
    g.ig = std::exp(ip - g.am), g.fg = S(1);
  } else {
    g.ig = S(1), g.fg = std::exp(g.am - ip);
  }
  return g;
}

struct Shape {
  int64_t B, T, H, D;
  int64_t off5(int64_t b, int64_t t, int g, int64_t hd) const { return (((b * T + t) * 4 + g) * H + hd) * D; }
  int64_t off4(int64_t b, int64_t t, int64_t hd) const { return ((b * T + t) * H + hd) * D; }
  int64_t offs(int g, int64_t b, int64_t hd) const { return ((g * B + b) * H + hd) * D; }
};

// Runs task(p) for every (batch row, head) pair p in [0, B*H), split into contiguous ranges over the threads.
template <typename Task>
void for_each_pair(int64_t pairs, int nthreads, const Task& task) {
  const int64_t n = std::max<int64_t>(1, std::min<int64_t>(nthreads, pairs));
  if (n == 1) {
    for (int64_t p = 0; p < pairs; ++p) task(p);
    return;
  }
  std::vector<std::thread> threads;
  threads.reserve(n - 1);
  const auto run = [&](int64_t w) {
    for (int64_t p = pairs * w / n; p < pairs * (w + 1) / n; ++p) task(p);
  };
  for (int64_t w = 1; w < n; ++w) threads.emplace_back(run, w);
  run(0);
  for (auto& thread : threads) thread.join();
}

template <typename S>
void forward(const S* pre_x, const S* R, const S* state0, const uint8_t* resets, S* h_out, S* state_T, S* pre_save,
             S* state_save, Shape s, int nthreads) {
  const int64_t D = s.D, G4 = 4 * s.D;
  for_each_pair(s.B * s.H, nthreads, [&](int64_t pair) {
    const int64_t b = pair / s.H, hd = pair % s.H;
    const S* Rh = R + hd * D * G4;
    std::vector<S> buf(4 * D + G4, S(0));
    S *c = buf.data(), *n = c + D, *m = n + D, *h = m + D, *pre = h + D;
    if (state0 != nullptr) {
      for (int g = 0; g < 4; ++g) std::copy_n(state0 + s.offs(g, b, hd), D, buf.data() + g * D);
    }
    for (int64_t t = 0; t < s.T; ++t) {
      if (resets != nullptr && resets[b * s.T + t]) std::fill_n(buf.data(), 4 * D, S(0));
      // pre = gates_x_t + b + h_{t-1} @ R[hd]
      for (int g = 0; g < 4; ++g) std::copy_n(pre_x + s.off5(b, t, g, hd), D, pre + g * D);
      for (int64_t k = 0; k < D; ++k) {
        const S hk = h[k];
        const S* Rk = Rh + k * G4;
        for (int64_t col = 0; col < G4; ++col) pre[col] += hk * Rk[col];
      }
      for (int64_t j = 0; j < D; ++j) {
        const S ip = pre[j], zp = pre[2 * D + j], op = pre[3 * D + j];
        const Gates<S> gate = stabilised_gates(ip, pre[D + j], n[j], m[j]);
        c[j] = gate.fg * c[j] + gate.ig * std::tanh(zp);
        n[j] = gate.fg * n[j] + gate.ig;
        m[j] = std::max(gate.am, ip);
        h[j] = sigmoid(op) * c[j] / std::max(n[j], S(kTiny));
      }
      std::copy_n(h, D, h_out + s.off4(b, t, hd));
      if (pre_save != nullptr) {
        for (int g = 0; g < 4; ++g) {
          std::copy_n(pre + g * D, D, pre_save + s.off5(b, t, g, hd));
          std::copy_n(buf.data() + g * D, D, state_save + s.off5(b, t, g, hd));
        }
      }
    }
    for (int g = 0; g < 4; ++g) std::copy_n(buf.data() + g * D, D, state_T + s.offs(g, b, hd));
  });
}

template <typename S>
void backward(const S* dh_out, const S* dstate_T, const S* RT, const S* pre_save, const S* state_save,
              const S* state0, const uint8_t* resets, S* dpre_out, S* dstate0, Shape s, int nthreads) {
  const int64_t D = s.D, G4 = 4 * s.D;
  for_each_pair(s.B * s.H, nthreads, [&](int64_t pair) {
    const int64_t b = pair / s.H, hd = pair % s.H;
    const S* RTh = RT + hd * G4 * D;
    // Gradients carried backwards in time: w.r.t. c_t, n_t, m_t and h_t (the last from step t + 1's product).
    std::vector<S> buf(4 * D + G4, S(0));
    S *dc = buf.data(), *dn = dc + D, *dm = dn + D, *dh_rec = dm + D, *dpre = dh_rec + D;
    if (dstate_T != nullptr) {
      for (int g = 0; g < 4; ++g) std::copy_n(dstate_T + s.offs(g, b, hd), D, buf.data() + g * D);
    }
    for (int64_t t = s.T - 1; t >= 0; --t) {
      const bool reset = resets != nullptr && resets[b * s.T + t];
      const S* pre = pre_save + s.off5(b, t, 0, hd);  // gate g of unit j at pre[g * H * D + j]
      const int64_t gs = s.H * D;
      // The state step t started from: c, n, m of unit j at prev[j], prev[stride + j], prev[2 stride + j] (none:
      // zeros, after a reset or from no initial state).
      const S* prev = nullptr;
      int64_t stride = 0;
      if (!reset && t > 0) {
        prev = state_save + s.off5(b, t - 1, 0, hd), stride = gs;
      } else if (!reset && state0 != nullptr) {
        prev = state0 + s.offs(0, b, hd), stride = s.B * s.H * D;
      }
      const S* dh_t = dh_out + s.off4(b, t, hd);
      for (int64_t j = 0; j < D; ++j) {
        const S c0 = prev ? prev[j] : S(0), n0 = prev ? prev[stride + j] : S(0);
        const S m0 = prev ? prev[2 * stride + j] : S(0);
        const S ip = pre[j], fp = pre[gs + j], zp = pre[2 * gs + j], op = pre[3 * gs + j];
        // Recompute the step.
        const Gates<S> gate = stabilised_gates(ip, fp, n0, m0);
        const S am0 = gate.am0, am = gate.am, cap = gate.cap, ig = gate.ig, fg = gate.fg;
        const bool empty = gate.empty;
        const S zt = std::tanh(zp), og = sigmoid(op);
        const S c = fg * c0 + ig * zt, n = fg * n0 + ig;
        const S inv = S(1) / std::max(n, S(kTiny));
        const S dh = dh_rec[j] + dh_t[j];
        // h = og c / max(n, tiny)
        const S dct = dc[j] + dh * og * inv;
        const S dnt = dn[j] + (n >= S(kTiny) ? -dh * og * c * inv * inv : S(0));
        dpre[3 * D + j] = dh * c * inv * og * (S(1) - og);
        // c = fg c0 + ig zt,  n = fg n0 + ig
        const S dig = dct * zt + dnt, dfg = dct * c0 + dnt * n0;
        dpre[2 * D + j] = dct * ig * (S(1) - zt * zt);
        // ig = exp(i~ - m_new), fg = exp(am - m_new), m_new = max(am, i~): ties split the gradient, as torch does
        S di = dig * ig, dam = dfg * fg;
        const S dmt = dm[j] - dig * ig - dfg * fg;
        if (am > ip) {
          dam += dmt;
        } else if (am < ip) {
          di += dmt;
        } else {
          dam += S(0.5) * dmt;
          di += S(0.5) * dmt;
        }
        if (empty && am0 >= cap) {  // the cap's gradient goes to i~ (a tie splits it, as torch.minimum)
          const S to_i = am0 > cap ? dam : S(0.5) * dam;
          di += to_i;
          dam -= to_i;
        }
        dpre[j] = di;
        dpre[D + j] = dam * sigmoid(-fp);  // d logsigmoid(x) / dx
        // Into the previous state; nothing flows across a reset.
        dc[j] = reset ? S(0) : dct * fg;
        dn[j] = reset ? S(0) : dnt * fg;
        dm[j] = reset ? S(0) : dam;
      }
      for (int g = 0; g < 4; ++g) std::copy_n(dpre + g * D, D, dpre_out + s.off5(b, t, g, hd));
      // dh_{t-1} = dpre_t @ R[hd]^T; nothing flows across a reset.
      std::fill_n(dh_rec, D, S(0));
      if (!reset) {
        for (int64_t col = 0; col < G4; ++col) {
          const S d = dpre[col];
          const S* RTc = RTh + col * D;
          for (int64_t k = 0; k < D; ++k) dh_rec[k] += d * RTc[k];
        }
      }
    }
    for (int g = 0; g < 4; ++g) std::copy_n(buf.data() + g * D, D, dstate0 + s.offs(g, b, hd));
  });
}

}  // namespace

extern "C" {

// Returns the version of this interface; the loader refuses a library whose version it does not expect.
int xlstm_slstm_cpu_abi() { return 1; }

#define XLSTM_SLSTM_CPU_ENTRY_POINTS(S, SUFFIX)                                                                    \
  void xlstm_slstm_cpu_fwd_##SUFFIX(const S* pre_x, const S* R, const S* state0, const uint8_t* resets, S* h_out, \
                                    S* state_T, S* pre_save, S* state_save, int64_t B, int64_t T, int64_t H,       \
                                    int64_t D, int nthreads) {                                                     \
    forward<S>(pre_x, R, state0, resets, h_out, state_T, pre_save, state_save, Shape{B, T, H, D}, nthreads);       \
  }                                                                                                                \
  void xlstm_slstm_cpu_bwd_##SUFFIX(const S* dh, const S* dstate_T, const S* RT, const S* pre_save,                \
                                    const S* state_save, const S* state0, const uint8_t* resets, S* dpre,          \
                                    S* dstate0, int64_t B, int64_t T, int64_t H, int64_t D, int nthreads) {        \
    backward<S>(dh, dstate_T, RT, pre_save, state_save, state0, resets, dpre, dstate0, Shape{B, T, H, D},          \
                nthreads);                                                                                         \
  }

XLSTM_SLSTM_CPU_ENTRY_POINTS(float, f32)
XLSTM_SLSTM_CPU_ENTRY_POINTS(double, f64)

}  // extern "C"
