r"""mLSTM reference kernels in plain PyTorch: the test oracle and the CPU path.

Shapes: q, k (B,H,T,DK), v (B,H,T,DV), gate pre-activations i, f (B,H,T), resets (B,T) bool, state
``(C (B,H,DK,DV), n (B,H,DK), m (B,H))``. Everything is computed in float32 whatever the input dtype
(float64 stays float64 so that gradcheck works); h is returned in q's dtype, the state in the compute dtype.

The stabilised recurrence (per batch element and head; q is scaled by DK**-0.5)::

    logf_t = logsigmoid(f_t)
    logi_t = i_t                    (input_gate="exp")
           = logsigmoid(i_t)        (input_gate="sigmoid")
    m_t    = max(logf_t + m_{t-1}, logi_t)
    i'_t   = exp(logi_t - m_t)
    f'_t   = exp(logf_t + m_{t-1} - m_t)
    C_t    = f'_t C_{t-1} + i'_t k_t v_t^T
    n_t    = f'_t n_{t-1} + i'_t k_t
    h_t    = (q_t^T C_t) / max(|q_t^T n_t|, exp(-m_t))

The true (unstabilised) memory is ``exp(m_t) C_t``; m is a stabiliser that h does not depend on except through the
``exp(-m_t)`` floor of the denominator. A reset before step t replaces (C, n, m) with the zero state (0, 0, 0).

Three equivalent forms are given, all returning the same h and the same final (C, n, m):

* ``mlstm_recurrent``: the loop above, O(T) sequential steps.
* ``mlstm_parallel``: quadratic in T. With the segment-aware cumulative log forget gate
  ``F_t = sum_{start(t) <= r <= t} logf_r`` (start(t) is the last reset at or before t, else 0), the log weight
  of step s in row t is ``D_ts = F_t - F_s + logi_s`` (s <= t, same segment, else -inf) and the initial state's is
  ``F_t + m0`` (``F_t + 0`` for the zero state after a reset). m is a max-plus recursion, so it is computed
  exactly: ``m_t = max(F_t + m_init(t), max_s D_ts)``, the same m the recurrence produces.
* ``mlstm_chunkwise``: linear in T. The sequence is cut into chunks of ``chunk_size`` steps (the last one padded);
  inside each chunk the parallel form runs, vectorised over all chunks at once; only the (C, n, m) carried from
  chunk to chunk is a loop over chunks (cheap: a few elementwise ops on (B,H,DK,DV) per chunk).

Gradient convention: plain autograd through this stabilised forward, m NOT detached. This is the gradient of the
function the forward computes, so it agrees with finite differences (tested with ``torch.autograd.gradcheck``).
mlstm-kernels' custom backward treats m as a constant and differs from finite differences where the
``exp(-m)`` floor is active; every fast backend here is tested against this convention.

Extreme values. Gate pre-activations across [-1000, 1000] (the range the property tests draw from) give finite
outputs, states and gradients: the normaliser never forms ``exp(-m)`` where it overflows (``_normalise``), and
padded chunk rows are dropped before it. (At such gates the parallel and chunkwise forms' cumulative log forget
gates reach tens of thousands, where float32 rounds at ~0.004: that, not the stabiliser, bounds their accuracy.)
Non-finite values reach no output before their step: a NaN in k, v, i or f at step s makes the outputs from s to
the end of its segment (and the final state, if s is in the last segment) NaN, as in the recurrence. The parallel
and chunkwise forms, whose matrix products would multiply it by the zero weight of every earlier row
(0 * NaN = NaN), run on copies in which such steps are zeroed and then select NaN for the steps it reaches
(``_nonfinite_steps``). Resets select the zero state (``torch.where``), so nothing crosses them.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from xlstm_seq.kernels.validation import check_mlstm_inputs, check_mlstm_step_inputs, compute_dtype

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "MLSTMState",
    "mlstm_chunkwise",
    "mlstm_parallel",
    "mlstm_recurrent",
    "mlstm_step_naive",
]

#: Chunk length of the chunkwise form when ``chunk_size=None`` (the one place this default lives).
DEFAULT_CHUNK_SIZE = 64

MLSTMState = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def _logsigmoid(x: torch.Tensor) -> torch.Tensor:
    """log(sigmoid(x)) computed as -softplus(-x), exact to float64 precision (threshold 40).

    ``F.logsigmoid`` enters the thread pool even for tiny tensors; on a loaded 2-core machine that made every
    per-step call about 100x slower.
    """
    return -F.softplus(-x, threshold=40.0)


# ----------------------------------------------------------------------------------------------- helpers


def _log_gates(i: torch.Tensor, f: torch.Tensor, input_gate: str) -> tuple[torch.Tensor, torch.Tensor]:
    logi = i if input_gate == "exp" else _logsigmoid(i)
    return logi, _logsigmoid(f)


def _initial_state(
    state: MLSTMState | None, B: int, H: int, DK: int, DV: int, dtype: torch.dtype, device: torch.device
) -> MLSTMState:
    if state is None:
        return (
            torch.zeros(B, H, DK, DV, dtype=dtype, device=device),
            torch.zeros(B, H, DK, dtype=dtype, device=device),
            torch.zeros(B, H, dtype=dtype, device=device),
        )
    C, n, m = state
    return C.to(dtype), n.to(dtype), m.to(dtype)


def _segment_cumsum(logf: torch.Tensor, resets: torch.Tensor | None) -> torch.Tensor:
    """Cumulative sum over the last dim that restarts at every reset (the reset step itself is included).

    logf (..., T); resets bool, broadcastable to logf. Returns (..., T).
    """
    cs = logf.cumsum(-1)
    if resets is None:
        return cs
    T = logf.shape[-1]
    positions = torch.arange(T, device=logf.device)
    start = torch.where(resets, positions, 0).cummax(-1).values.expand_as(cs)
    exclusive = cs - logf
    return cs - exclusive.gather(-1, start)


def _prepare(q, k, v, i, f, input_gate):
    cdt = compute_dtype(q.dtype)
    scale = q.shape[-1] ** -0.5
    logi, logf = _log_gates(i.to(cdt), f.to(cdt), input_gate)
    return q.to(cdt) * scale, k.to(cdt), v.to(cdt), logi, logf


def log_max(dtype: torch.dtype) -> float:
    """A bound on |m| inside which ``exp(m)`` and ``exp(-m)`` stay finite in ``dtype`` (87.7 for float32)."""
    return math.log(torch.finfo(dtype).max) - 1.0


def _normalise(num: torch.Tensor, den: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """h = num / max(|den|, exp(-m)); num (..., DV), den and m (...).

    The floor's exponent is clamped to +-``log_max``: for m < -88 (float32) ``exp(-m)`` would overflow, and its
    backward multiply a zero gradient by inf (NaN gradients behind a finite h = 0); for m > 103 it would vanish,
    and a zero den (q = 0) divide 0 by 0. Where the clamp acts, h is below |num| * 1e-38 (m < -87.7) or den below
    float32's normal range (m > 87.7); elsewhere nothing changes.
    """
    bound = log_max(m.dtype)
    return num / torch.maximum(den.abs(), torch.exp(-m.clamp(-bound, bound))).unsqueeze(-1)


def _nonfinite_steps(k: torch.Tensor, v: torch.Tensor, f: torch.Tensor) -> torch.Tensor | None:
    """(B,H,T) bool: the steps whose k, v or f is not finite; None on the CPU when there is none.

    The parallel and chunkwise forms multiply every step's k and v by the zero weight it has in earlier rows, and
    difference cumulative sums of log forget gates across resets: a NaN or inf there would reach those rows
    (0 * NaN = NaN). They run on copies with such steps zeroed (``_sanitise``), and ``_poison`` puts NaN back where
    the recurrence has it. A step is found through one sum over its k and v (a non-finite element makes it
    non-finite, and a sum is far cheaper than testing every element), so a step whose finite k and v sum past the
    dtype's range, and would overflow q.k or C anyway, counts too. Input gates need no care: a NaN there reaches only
    the steps the recurrence sends it to, through the masks' selections. On the CPU the check of the result costs
    nothing and lets clean inputs skip the copies; elsewhere (no device sync) and under ``torch.compile`` (no
    data-dependent branch) the work always runs, which changes nothing for clean inputs.
    """
    finite = torch.isfinite(k.sum(-1) + v.sum(-1) + f * 0.0)  # (B,H,T); f * 0 is NaN exactly where f is not finite
    if finite.device.type == "cpu" and not torch.compiler.is_compiling() and finite.all():
        return None
    return ~finite


def _sanitise(k: torch.Tensor, v: torch.Tensor, f: torch.Tensor, bad: torch.Tensor | None):
    """k, v and f with the ``bad`` steps (B,H,T) zeroed; unchanged when ``bad`` is None."""
    if bad is None:
        return k, v, f
    return torch.where(bad[..., None], 0.0, k), torch.where(bad[..., None], 0.0, v), torch.where(bad, 0.0, f)


def _poison(h: torch.Tensor, state: MLSTMState, bad: torch.Tensor | None, resets: torch.Tensor | None):
    """NaN in h (B,H,T,DV) from each bad step (B,H,T) to the end of its segment, and in the final state if a bad step
    is in the last segment: what the recurrence gives (it gives NaN in fewer columns; NaN is NaN)."""
    if bad is None:
        return h, state
    reached = _segment_cumsum(bad.to(torch.int32), None if resets is None else resets[:, None, :]) > 0  # (B,H,T)
    h = torch.where(reached[..., None], float("nan"), h)
    last = reached[..., -1]  # (B,H)
    C, n, m = state
    return h, (
        torch.where(last[..., None, None], float("nan"), C),
        torch.where(last[..., None], float("nan"), n),
        torch.where(last, float("nan"), m),
    )


# ----------------------------------------------------------------------------------------------- recurrent


def _step(q, k, v, logi, logf, C, n, m):
    """One stabilised step; q (B,H,DK) already scaled, k (B,H,DK), v (B,H,DV), logi/logf (B,H)."""
    m_new = torch.maximum(logf + m, logi)  # (B,H)
    i_gate = torch.exp(logi - m_new)
    f_gate = torch.exp(logf + m - m_new)
    C = f_gate[..., None, None] * C + i_gate[..., None, None] * (k.unsqueeze(-1) * v.unsqueeze(-2))  # (B,H,DK,DV)
    n = f_gate[..., None] * n + i_gate[..., None] * k  # (B,H,DK)
    num = (q.unsqueeze(-2) @ C).squeeze(-2)  # (B,H,DV)
    den = (q * n).sum(-1)  # (B,H)
    return _normalise(num, den, m_new), (C, n, m_new)


def _mlstm_recurrent(q, k, v, i, f, initial_state, resets, input_gate):
    B, H, T, DK = q.shape
    DV = v.shape[-1]
    out_dtype = q.dtype
    q, k, v, logi, logf = _prepare(q, k, v, i, f, input_gate)
    C, n, m = _initial_state(initial_state, B, H, DK, DV, q.dtype, q.device)
    hs = []
    for t in range(T):
        if resets is not None:
            r = resets[:, t, None]  # (B,1)
            C = torch.where(r[..., None, None], 0.0, C)
            n = torch.where(r[..., None], 0.0, n)
            m = torch.where(r, 0.0, m)
        h_t, (C, n, m) = _step(q[:, :, t], k[:, :, t], v[:, :, t], logi[:, :, t], logf[:, :, t], C, n, m)
        hs.append(h_t)
    return torch.stack(hs, dim=2).to(out_dtype), (C, n, m)


def mlstm_recurrent(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    i: torch.Tensor,
    f: torch.Tensor,
    initial_state: MLSTMState | None = None,
    resets: torch.Tensor | None = None,
    *,
    input_gate: str = "exp",
) -> tuple[torch.Tensor, MLSTMState]:
    """mLSTM as a step-by-step loop (the most literal form of the recurrence; slow, for tests).

    Args:
        q: Queries (B,H,T,DK).
        k: Keys (B,H,T,DK).
        v: Values (B,H,T,DV).
        i: Input-gate pre-activations (B,H,T), same dtype as q.
        f: Forget-gate pre-activations (B,H,T), same dtype as q.
        initial_state: ``(C (B,H,DK,DV), n (B,H,DK), m (B,H))`` or None for zeros.
        resets: (B,T) bool; memory is cleared to the zero state before step t where True. None: no resets.
        input_gate: ``"exp"`` (default) or ``"sigmoid"``.

    Returns:
        h (B,H,T,DV) in q's dtype, and the final state (C, n, m) in float32 (float64 for float64 inputs).
    """
    check_mlstm_inputs(q, k, v, i, f, initial_state, resets, None, input_gate)
    return _mlstm_recurrent(q, k, v, i, f, initial_state, resets, input_gate)


def mlstm_step_naive(
    q_t: torch.Tensor,
    k_t: torch.Tensor,
    v_t: torch.Tensor,
    i_t: torch.Tensor,
    f_t: torch.Tensor,
    state: MLSTMState | None = None,
    *,
    input_gate: str = "exp",
) -> tuple[torch.Tensor, MLSTMState]:
    """One mLSTM step (constant memory), for generation and RL rollouts.

    Args:
        q_t: Query (B,H,DK).
        k_t: Key (B,H,DK).
        v_t: Value (B,H,DV).
        i_t: Input-gate pre-activation (B,H), same dtype as q_t.
        f_t: Forget-gate pre-activation (B,H), same dtype as q_t.
        state: ``(C (B,H,DK,DV), n (B,H,DK), m (B,H))`` or None for zeros.
        input_gate: ``"exp"`` (default) or ``"sigmoid"``.

    Returns:
        h_t (B,H,DV) in q_t's dtype, and the new state in float32 (float64 for float64 inputs).
    """
    check_mlstm_step_inputs(q_t, k_t, v_t, i_t, f_t, state, input_gate)
    return _mlstm_step(q_t, k_t, v_t, i_t, f_t, state, input_gate)


def _mlstm_step(q_t, k_t, v_t, i_t, f_t, state, input_gate):
    B, H, DK = q_t.shape
    out_dtype = q_t.dtype
    q, k, v, logi, logf = _prepare(q_t, k_t, v_t, i_t, f_t, input_gate)
    C, n, m = _initial_state(state, B, H, DK, v.shape[-1], q.dtype, q.device)
    h_t, new_state = _step(q, k, v, logi, logf, C, n, m)
    return h_t.to(out_dtype), new_state


# ----------------------------------------------------------------------------------------------- parallel


def _mlstm_parallel(q, k, v, i, f, initial_state, resets, input_gate):
    B, H, T, DK = q.shape
    DV = v.shape[-1]
    out_dtype = q.dtype
    bad = _nonfinite_steps(k, v, f)
    k, v, f = _sanitise(k, v, f, bad)
    q, k, v, logi, logf = _prepare(q, k, v, i, f, input_gate)
    C0, n0, m0 = _initial_state(initial_state, B, H, DK, DV, q.dtype, q.device)
    given_resets = resets
    if resets is None:
        resets = torch.zeros(B, T, dtype=torch.bool, device=q.device)
    resets = resets[:, None, :]  # (B,1,T)

    seg = resets.long().cumsum(-1)  # (B,1,T) segment id; 0 = the segment that starts from initial_state
    Fc = _segment_cumsum(logf, resets)  # (B,H,T)
    causal = torch.ones(T, T, dtype=torch.bool, device=q.device).tril()
    same = (seg[..., :, None] == seg[..., None, :]) & causal  # (B,1,T,T)
    D = (Fc[..., :, None] - Fc[..., None, :] + logi[..., None, :]).masked_fill(~same, float("-inf"))  # (B,H,T,T)

    from_init = seg == 0  # (B,1,T)
    # Log weight of the state the row's segment starts from: initial_state, or the zero state (m = 0).
    init_log = Fc + torch.where(from_init, m0[..., None], 0.0)  # (B,H,T)
    m = torch.maximum(init_log, D.amax(-1))  # (B,H,T)
    W = torch.exp(D - m[..., None])  # (B,H,T,T)
    init_w = torch.where(from_init, torch.exp(init_log - m), 0.0)  # (B,H,T)

    S = (q @ k.transpose(-1, -2)) * W  # (B,H,T,T)
    # Rows after a reset select zero instead of multiplying the initial state by 0 (a NaN there must not cross).
    num = S @ v + torch.where(from_init[..., None], init_w[..., None] * (q @ C0), 0.0)  # (B,H,T,DV)
    den = S.sum(-1) + torch.where(from_init, init_w * (q @ n0[..., None])[..., 0], 0.0)  # (B,H,T)
    h = _normalise(num, den, m)

    w_last = W[:, :, -1]  # (B,H,T)
    last_from_init = from_init[..., -1]  # (B,1)
    C_init = torch.where(last_from_init[..., None, None], init_w[:, :, -1, None, None] * C0, 0.0)
    n_init = torch.where(last_from_init[..., None], init_w[:, :, -1, None] * n0, 0.0)
    C = C_init + (k * w_last[..., None]).transpose(-1, -2) @ v  # (B,H,DK,DV)
    n = n_init + (w_last.unsqueeze(-2) @ k).squeeze(-2)  # (B,H,DK)
    h, state = _poison(h, (C, n, m[:, :, -1]), bad, given_resets)
    return h.to(out_dtype), state


def mlstm_parallel(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    i: torch.Tensor,
    f: torch.Tensor,
    initial_state: MLSTMState | None = None,
    resets: torch.Tensor | None = None,
    *,
    input_gate: str = "exp",
) -> tuple[torch.Tensor, MLSTMState]:
    """mLSTM in the quadratic parallel form (T x T decay matrix; for short sequences and tests).

    Arguments and returns as :func:`mlstm_recurrent`. Memory is O(B*H*T^2); the cumulative log forget gate loses
    float32 precision over very long sequences, so use :func:`mlstm_chunkwise` beyond a few thousand steps.
    """
    check_mlstm_inputs(q, k, v, i, f, initial_state, resets, None, input_gate)
    return _mlstm_parallel(q, k, v, i, f, initial_state, resets, input_gate)


# ----------------------------------------------------------------------------------------------- chunkwise


def _mlstm_chunkwise(q, k, v, i, f, initial_state, resets, chunk_size, input_gate):
    B, H, T, DK = q.shape
    DV = v.shape[-1]
    out_dtype = q.dtype
    bad = _nonfinite_steps(k, v, f)
    k, v, f = _sanitise(k, v, f, bad)
    q, k, v, logi, logf = _prepare(q, k, v, i, f, input_gate)
    C, n, m = _initial_state(initial_state, B, H, DK, DV, q.dtype, q.device)
    given_resets = resets
    if resets is None:
        resets = torch.zeros(B, T, dtype=torch.bool, device=q.device)

    L = min(chunk_size or DEFAULT_CHUNK_SIZE, T)
    NC = -(-T // L)
    pad = NC * L - T
    if pad:
        # Padded steps neither decay (logf = 0) nor write (logi = -inf, k = v = 0); their outputs are dropped.
        q, k, v = (F.pad(x, (0, 0, 0, pad)) for x in (q, k, v))
        logf = F.pad(logf, (0, pad), value=0.0)
        logi = F.pad(logi, (0, pad), value=float("-inf"))
        resets = F.pad(resets, (0, pad), value=False)
    q, k, v = (x.reshape(B, H, NC, L, x.shape[-1]) for x in (q, k, v))  # (B,H,NC,L,D*)
    logi, logf = logi.reshape(B, H, NC, L), logf.reshape(B, H, NC, L)
    rs = resets.reshape(B, 1, NC, L)

    # Intra-chunk log weights, all chunks at once.
    seg = rs.long().cumsum(-1)  # (B,1,NC,L) segment id inside the chunk; 0 = continues the carried state
    b = _segment_cumsum(logf, rs)  # (B,H,NC,L)
    causal = torch.ones(L, L, dtype=torch.bool, device=q.device).tril()
    same = (seg[..., :, None] == seg[..., None, :]) & causal  # (B,1,NC,L,L)
    D = (b[..., :, None] - b[..., None, :] + logi[..., None, :]).masked_fill(~same, float("-inf"))  # (B,H,NC,L,L)
    m_intra = D.amax(-1)  # (B,H,NC,L)

    # What each chunk alone adds to the state at its end, stabilised by its own max m_loc.
    m_loc = m_intra[..., -1]  # (B,H,NC)
    w_loc = torch.exp(D[..., -1, :] - m_loc[..., None])  # (B,H,NC,L)
    C_loc = (k * w_loc[..., None]).transpose(-1, -2) @ v  # (B,H,NC,DK,DV)
    n_loc = (w_loc.unsqueeze(-2) @ k).squeeze(-2)  # (B,H,NC,DK)
    g = b[..., -1]  # (B,H,NC) log decay over the chunk (since its last reset)
    chunk_reset = seg[..., -1] > 0  # (B,1,NC)

    # Carry (C, n, m) across chunks; keep the state entering each chunk for the outputs. Unbinding once (rather
    # than indexing chunk c inside the loop) keeps the backward linear in the number of chunks.
    C_in, n_in, m_in = [], [], []
    per_chunk = zip(
        g.unbind(-1), m_loc.unbind(-1), C_loc.unbind(2), n_loc.unbind(2), chunk_reset.unbind(-1), strict=True
    )
    for g_c, m_loc_c, C_loc_c, n_loc_c, r in per_chunk:
        C_in.append(C)
        n_in.append(n)
        m_in.append(m)
        m_carry = torch.where(r, 0.0, m)  # (B,H); a reset inside the chunk starts from the zero state (m = 0)
        m_new = torch.maximum(g_c + m_carry, m_loc_c)
        a = torch.exp(g_c + m_carry - m_new)
        w = torch.exp(m_loc_c - m_new)
        # A reset selects the zero state (multiplying the carried one by 0 would let a NaN through).
        C = w[..., None, None] * C_loc_c + torch.where(r[..., None, None], 0.0, a[..., None, None] * C)
        n = w[..., None] * n_loc_c + torch.where(r[..., None], 0.0, a[..., None] * n)
        m = m_new
    C_in = torch.stack(C_in, dim=2)  # (B,H,NC,DK,DV)
    n_in = torch.stack(n_in, dim=2)  # (B,H,NC,DK)
    m_in = torch.stack(m_in, dim=2)  # (B,H,NC)

    # Outputs: intra-chunk part plus the carried state's part, with the exact per-step m.
    carried = seg == 0  # (B,1,NC,L) step still sees the state carried into its chunk
    m_inter = b + torch.where(carried, m_in[..., None], 0.0)  # (B,H,NC,L)
    m_all = torch.maximum(m_inter, m_intra)  # (B,H,NC,L)
    S = (q @ k.transpose(-1, -2)) * torch.exp(D - m_all[..., None])  # (B,H,NC,L,L)
    inter_w = torch.exp(m_inter - m_all)  # (B,H,NC,L)
    num = S @ v + torch.where(carried[..., None], inter_w[..., None] * (q @ C_in), 0.0)  # (B,H,NC,L,DV)
    den = S.sum(-1) + torch.where(carried, inter_w * (q @ n_in[..., None])[..., 0], 0.0)  # (B,H,NC,L)

    # Padded rows (q = 0, den = 0) are dropped before the normaliser: nothing of them reaches h or the backward.
    def unpad(x: torch.Tensor) -> torch.Tensor:
        return x.reshape(B, H, NC * L, *x.shape[4:])[:, :, :T]

    h = _normalise(unpad(num), unpad(den), unpad(m_all))
    h, state = _poison(h, (C, n, m), bad, given_resets)
    return h.to(out_dtype), state


def mlstm_chunkwise(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    i: torch.Tensor,
    f: torch.Tensor,
    initial_state: MLSTMState | None = None,
    resets: torch.Tensor | None = None,
    *,
    chunk_size: int | None = None,
    input_gate: str = "exp",
) -> tuple[torch.Tensor, MLSTMState]:
    """mLSTM in the chunkwise form: linear in T, parallel inside chunks (the CPU path of ``backend="torch"``).

    Args:
        q: Queries (B,H,T,DK).
        k: Keys (B,H,T,DK).
        v: Values (B,H,T,DV).
        i: Input-gate pre-activations (B,H,T), same dtype as q.
        f: Forget-gate pre-activations (B,H,T), same dtype as q.
        initial_state: ``(C (B,H,DK,DV), n (B,H,DK), m (B,H))`` or None for zeros.
        resets: (B,T) bool; memory is cleared to the zero state before step t where True. None: no resets.
        chunk_size: Steps per chunk, any value >= 1 (T need not be a multiple). None: ``DEFAULT_CHUNK_SIZE`` (64).
        input_gate: ``"exp"`` (default) or ``"sigmoid"``.

    Returns:
        h (B,H,T,DV) in q's dtype, and the final state (C, n, m) in float32 (float64 for float64 inputs).
    """
    check_mlstm_inputs(q, k, v, i, f, initial_state, resets, chunk_size, input_gate)
    return _mlstm_chunkwise(q, k, v, i, f, initial_state, resets, chunk_size, input_gate)
