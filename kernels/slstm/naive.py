r"""sLSTM reference kernel in plain PyTorch: the test oracle and the CPU path.

Shapes: gates_x (B,T,4,H,D) holds the input contributions to the gates in the order i, f, z, o; R (H,D,4,D) the
block-diagonal recurrent weights (one (D, 4D) block per head); b (4,H,D) the biases; resets (B,T) bool; state
``(c, n, m, h)`` each (B,H,D). Computed in float32 whatever the input dtype (float64 stays float64 for gradcheck);
h is returned in gates_x's dtype, the state in the compute dtype.

The stabilised recurrence (per batch element, head and unit)::

    (i~, f~, z~, o~) = gates_x_t + h_{t-1} @ R[head] + b
    logf = logsigmoid(f~)
    a    = logf + m_{t-1}                          (n_{t-1} > 0)
         = min(logf + m_{t-1}, i~ + EMPTY_MARGIN)  (n_{t-1} = 0: an empty memory)
    m_t  = max(a, i~)
    i    = exp(i~ - m_t)
    f    = exp(a - m_t)
    c_t  = f c_{t-1} + i tanh(z~)
    n_t  = f n_{t-1} + i
    h_t  = sigmoid(o~) * c_t / max(n_t, tiny)

m is a pure stabiliser: h and the memory ``exp(m) (c, n)`` do not depend on it. An empty memory (the zero state,
or the step after a reset) holds nothing for m to track, and its m (0) can lie far above the first write: an input
gate of -100 was stored as ``exp(-100) = 0`` in float32, h divided two underflowed numbers, and the backward's
``1/n`` overflowed into NaN gradients. The cap keeps the first write's weight ``i >= exp(-EMPTY_MARGIN)``, so n
stays at least ``exp(-40)`` from then on and ``1/n`` finite; it changes nothing where the first write's gate is
within ``EMPTY_MARGIN`` of m (every input gate above -40 from the zero state). ``|c| <= n`` always, so the clamp
(float32's smallest normal number) only guards an empty memory. A reset before step t replaces (c, n, m, h) with
zeros. Gradients: plain autograd through this forward, m not detached.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from xlstm_seq.kernels.validation import check_slstm_inputs, check_slstm_step_inputs, compute_dtype

__all__ = ["SLSTMState", "slstm_recurrent", "slstm_step_naive"]

SLSTMState = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]

_TINY = torch.finfo(torch.float32).tiny
#: How far above the first write an empty memory's stabiliser may lie (see the module docstring): exp(-40) = 4e-18
#: is far from float32's underflow, and 1/n <= exp(40) leaves the backward's sums room below float32's maximum.
EMPTY_MARGIN = 40.0


def _logsigmoid(x: torch.Tensor) -> torch.Tensor:
    """log(sigmoid(x)) computed as -softplus(-x), exact to float64 precision (threshold 40).

    ``F.logsigmoid`` enters the thread pool even for tiny tensors; on a loaded 2-core machine that made every
    per-step call about 100x slower.
    """
    return -F.softplus(-x, threshold=40.0)


def _initial_state(state: SLSTMState | None, B: int, H: int, D: int, dtype, device) -> SLSTMState:
    if state is None:
        zeros = torch.zeros(B, H, D, dtype=dtype, device=device)
        return zeros, zeros, zeros, zeros
    return tuple(s.to(dtype) for s in state)  # type: ignore[return-value]


def _step(pre_x: torch.Tensor, R: torch.Tensor, c, n, m, h, may_be_empty: bool = True):
    """One step; pre_x (B,4,H,D) = gates_x_t + b in the compute dtype, R (H,D,4,D), state parts (B,H,D).

    ``may_be_empty``: False where n > 0 is known (every step after the first write; n stays positive: either the
    carried term wins, f = 1 and n cannot shrink, or the write does, i = 1 and n >= 1), which skips the cap.
    """
    B, H, D = h.shape
    # Per head: (B, D) @ (D, 4D), as one batched matmul over heads.
    rec = torch.bmm(h.transpose(0, 1), R.reshape(H, D, 4 * D))  # (H,B,4D)
    pre = pre_x + rec.view(H, B, 4, D).permute(1, 2, 0, 3)  # (B,4,H,D)
    i_pre, f_pre, z_pre, o_pre = pre.unbind(1)  # each (B,H,D)
    carry = _logsigmoid(f_pre) + m
    if may_be_empty:  # an empty memory: see the module docstring
        carry = torch.where(n > 0, carry, torch.minimum(carry, i_pre + EMPTY_MARGIN))
    m_new = torch.maximum(carry, i_pre)
    i_gate = torch.exp(i_pre - m_new)
    f_gate = torch.exp(carry - m_new)
    c = f_gate * c + i_gate * torch.tanh(z_pre)
    n = f_gate * n + i_gate
    h = torch.sigmoid(o_pre) * c / n.clamp_min(_TINY)
    return c, n, m_new, h


def _slstm_recurrent(gates_x, R, b, initial_state, resets, step=None):
    """The loop over time; ``step`` replaces :func:`_step` (same signature), e.g. by a compiled version of it."""
    step = _step if step is None else step
    B, T, _, H, D = gates_x.shape
    cdt = compute_dtype(gates_x.dtype)
    out_dtype = gates_x.dtype
    R = R.to(cdt)
    pre_x = gates_x.to(cdt) + b.to(cdt)  # (B,T,4,H,D)
    state = _initial_state(initial_state, B, H, D, cdt, gates_x.device)
    # The memory can be empty (n = 0) only before the first step and right after a reset.
    reset_steps = [False] * T if resets is None else resets.any(0).tolist()
    hs = []
    for t in range(T):
        if reset_steps[t]:
            r = resets[:, t, None, None]  # (B,1,1)
            state = tuple(torch.where(r, 0.0, s) for s in state)
        state = step(pre_x[:, t], R, *state, may_be_empty=t == 0 or reset_steps[t])
        hs.append(state[3])
    return torch.stack(hs, dim=1).to(out_dtype), state


def slstm_recurrent(
    gates_x: torch.Tensor,
    R: torch.Tensor,
    b: torch.Tensor,
    initial_state: SLSTMState | None = None,
    resets: torch.Tensor | None = None,
) -> tuple[torch.Tensor, SLSTMState]:
    """sLSTM over a whole sequence, step by step (the recurrence is nonlinear in h, so there is no parallel form).

    Args:
        gates_x: Input contributions to the gates (B,T,4,H,D), order i, f, z, o; any T >= 1.
        R: Recurrent weights (H,D,4,D): head h's pre-activations get ``h_{t-1}[:, h] @ R[h]``.
        b: Biases (4,H,D).
        initial_state: ``(c, n, m, h)`` each (B,H,D), or None for zeros.
        resets: (B,T) bool; the state is cleared to zeros before step t where True. Default None.

    Returns:
        h (B,T,H,D) in gates_x's dtype, and the final state (c, n, m, h) in float32 (float64 for float64 inputs).
    """
    check_slstm_inputs(gates_x, R, b, initial_state, resets)
    return _slstm_recurrent(gates_x, R, b, initial_state, resets)


def _slstm_step(gates_x_t, R, b, state):
    B, _, H, D = gates_x_t.shape
    cdt = compute_dtype(gates_x_t.dtype)
    state = _initial_state(state, B, H, D, cdt, gates_x_t.device)
    state = _step(gates_x_t.to(cdt) + b.to(cdt), R.to(cdt), *state)
    return state[3].to(gates_x_t.dtype), state


def slstm_step_naive(
    gates_x_t: torch.Tensor, R: torch.Tensor, b: torch.Tensor, state: SLSTMState | None = None
) -> tuple[torch.Tensor, SLSTMState]:
    """One sLSTM step.

    Args:
        gates_x_t: Input contributions to the gates (B,4,H,D), order i, f, z, o.
        R: Recurrent weights (H,D,4,D).
        b: Biases (4,H,D).
        state: ``(c, n, m, h)`` each (B,H,D), or None for zeros.

    Returns:
        h_t (B,H,D) in gates_x_t's dtype, and the new state in float32 (float64 for float64 inputs).
    """
    check_slstm_step_inputs(gates_x_t, R, b, state)
    return _slstm_step(gates_x_t, R, b, state)
