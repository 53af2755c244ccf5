"""The forecasting networks, chosen by name: ``xlstm_time``, ``xlstm_time_linear`` (a linear forecast refined by the
xLSTM path), ``xlstm_mixer`` (xLSTM-Mixer), ``xlstm_encoder`` and the ``dlinear`` baseline.

Every model maps one batch of windows to forecasts with the same contract::

    out = model(batch)   # (B, h, C, Q): horizon h, channels C, outputs Q (1 for a point loss, else quantiles)

    batch["y"]       (B, L, C)      target history (look-back L, C channels: 1 when channel-independent,
                                    every series when mixing over variates)
    batch["x_hist"]  (B, L, C, X)   exogenous values over the look-back (historic and future-known columns)
    batch["x_futr"]  (B, h, C, F)   future-known exogenous values over the horizon
    batch["x_stat"]  (B, C, S)      static exogenous values

Target scaling (RevIN: per window and channel, with a learnable affine map) and the moving-average
decomposition live here; exogenous columns arrive already standardised by the forecaster.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from xlstm_seq.config import sLSTMLayerConfig, xLSTMConfig
from xlstm_seq.stack import xLSTMStack

BACKBONES = ("mlstm", "slstm", "mixed")
MIXINGS = ("independent", "variates")


@dataclass
class NetSpec:
    """What a network needs to know about the data and the settings (built by the forecaster)."""

    input_size: int
    h: int
    n_channels: int
    n_hist: int
    n_futr: int
    n_stat: int
    n_outputs: int
    embedding_dim: int = 64
    num_blocks: int = 2
    num_heads: int = 4
    backbone: str = "mlstm"
    mixing: str = "independent"
    patch_len: int = 16
    patch_stride: int | None = None  # None: patch_len (non-overlapping patches)
    moving_avg: int = 25
    revin: bool = True
    revin_subtract_last: bool = False  # centre each window on its last value instead of its mean
    dropout: float = 0.0


def stack_config(spec: NetSpec) -> xLSTMConfig:
    """The xLSTMStack settings for a backbone name: all mLSTM, all sLSTM, or alternating ("mixed")."""
    if spec.backbone not in BACKBONES:
        raise ValueError(f"backbone must be one of {BACKBONES}, got {spec.backbone!r}")
    if spec.backbone == "mixed" and spec.num_blocks < 2:
        raise ValueError(f"backbone 'mixed' needs num_blocks >= 2 (one mLSTM and one sLSTM), got {spec.num_blocks}")
    ratio = {"mlstm": "1:0", "slstm": "0:1", "mixed": "1:1"}[spec.backbone]
    # The mLSTM runs the torch reference on any device (a forecaster's windows are short and its chunkwise form is the
    # CPU path); the sLSTM takes its fastest kernel ("auto": the C++ recurrence on a CPU with a compiler, the fused
    # CUDA kernel on a GPU), several times faster than the torch loop and equal to it to float32 rounding.
    return xLSTMConfig(
        embedding_dim=spec.embedding_dim,
        num_blocks=spec.num_blocks,
        num_heads=spec.num_heads,
        block_ratio=ratio,
        dropout=spec.dropout,
        backend="torch",
        slstm=sLSTMLayerConfig(backend="auto"),
    )


class RevIN(nn.Module):
    """Reversible instance normalisation (Kim et al., 2022): scale each window and channel, undo it at the end."""

    def __init__(self, n_channels: int, enabled: bool = True, eps: float = 1e-5, subtract_last: bool = False):
        super().__init__()
        self.enabled = enabled
        self.eps = eps
        # PatchTST's option: under a level shift the last value is a better centre for the forecast than the mean.
        self.subtract_last = subtract_last
        self.weight = nn.Parameter(torch.ones(n_channels))
        self.bias = nn.Parameter(torch.zeros(n_channels))

    def normalise(self, y: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """y (B, L, C) -> normalised (B, L, C), centre (B, 1, C), std (B, 1, C); the centre is the window's mean,
        or its last value with ``subtract_last``."""
        if not self.enabled:
            ones = torch.ones_like(y[:, :1])
            return y, torch.zeros_like(ones), ones
        mean = y[:, -1:] if self.subtract_last else y.mean(dim=1, keepdim=True)
        std = torch.sqrt(y.var(dim=1, keepdim=True, unbiased=False) + self.eps)
        return (y - mean) / std * self.weight + self.bias, mean, std

    def denormalise(self, out: Tensor, mean: Tensor, std: Tensor) -> Tensor:
        """out (B, h, C, Q) back to the data scale."""
        if not self.enabled:
            return out
        weight = self.weight[:, None]  # (C, 1)
        bias = self.bias[:, None]
        return ((out - bias) / (weight + self.eps)) * std.unsqueeze(-1) + mean.unsqueeze(-1)


def revin_for(spec: NetSpec) -> RevIN:
    """The RevIN layer a network's settings ask for."""
    return RevIN(spec.n_channels, spec.revin, subtract_last=spec.revin_subtract_last)


def _check_mixing(spec: NetSpec) -> NetSpec:
    if spec.mixing not in MIXINGS:
        raise ValueError(f"mixing must be one of {MIXINGS}, got {spec.mixing!r}")
    return spec


def moving_average(y: Tensor, kernel: int) -> Tensor:
    """Trend of y (B, L, C) by a centred moving average with edge padding; same shape."""
    if kernel <= 1:
        return y
    left = (kernel - 1) // 2
    right = kernel - 1 - left
    padded = torch.cat([y[:, :1].expand(-1, left, -1), y, y[:, -1:].expand(-1, right, -1)], dim=1)
    return nn.functional.avg_pool1d(padded.transpose(1, 2), kernel, stride=1).transpose(1, 2)


def patch_layout(input_size: int, patch_len: int, stride: int | None) -> tuple[int, int]:
    """(number of patches, left padding) that cover a look-back with patches of patch_len steps, stride apart.

    Overlapping patches (stride < patch_len) are PatchTST's layout; the padding repeats the first step so that
    the last patch ends on the last observed step.
    """
    stride = patch_len if stride is None else stride
    if not 1 <= stride <= patch_len:
        raise ValueError(f"patch_stride must be None or between 1 and patch_len={patch_len}, got {stride}")
    n_patches = 1 + max(0, -(-(input_size - patch_len) // stride))
    return n_patches, (n_patches - 1) * stride + patch_len - input_size


def patchify(t: Tensor, patch_len: int, stride: int | None, pad: int) -> Tensor:
    """t (N, L, ...) -> patches (N, P, patch_len * ...), left-padded by repeating the first step."""
    stride = patch_len if stride is None else stride
    if pad:
        t = torch.cat([t[:, :1].expand(-1, pad, *t.shape[2:]), t], dim=1)
    N = t.shape[0]
    flat = t.reshape(N, t.shape[1], -1)  # (N, L + pad, F)
    if stride == patch_len:
        return flat.reshape(N, -1, patch_len * flat.shape[-1])
    patches = flat.unfold(1, patch_len, stride)  # (N, P, F, patch_len)
    return patches.transpose(2, 3).reshape(N, patches.shape[1], -1)  # step-major inside a patch, as reshape


def _channel_major(t: Tensor) -> Tensor:
    """(B, T, C, ...) -> (B * C, T, ...): one sequence per channel."""
    B, T, C = t.shape[:3]
    return t.transpose(1, 2).reshape(B * C, T, *t.shape[3:])


class XLSTMTime(nn.Module):
    """xLSTMTime-style model: RevIN, moving-average decomposition, linear embeddings, xLSTMStack, linear head.

    mixing="independent": every channel is its own sequence of patches (patch_len steps each), the stack
    runs over patches and the head maps the flattened patch states to the horizon.
    mixing="variates": each channel's whole look-back is one token; the stack runs over the channels and so
    mixes information between the series (the variate-token layout of xLSTMTime and iTransformer).
    """

    def __init__(self, spec: NetSpec):
        super().__init__()
        self.spec = _check_mixing(spec)
        E, L, h, Q = spec.embedding_dim, spec.input_size, spec.h, spec.n_outputs
        self.revin = revin_for(spec)
        if spec.mixing == "independent":
            self.n_tokens, self.pad = patch_layout(L, spec.patch_len, spec.patch_stride)
            width = spec.patch_len
        else:
            self.n_tokens, self.pad, width = spec.n_channels, 0, L
            self.channel_embedding = nn.Parameter(torch.zeros(spec.n_channels, E))
        self.embed_seasonal = nn.Linear(width, E)
        self.embed_trend = nn.Linear(width, E)
        self.embed_hist = nn.Linear(width * spec.n_hist, E) if spec.n_hist else None
        self.embed_stat = nn.Linear(spec.n_stat, E) if spec.n_stat else None
        self.norm = nn.LayerNorm(E)
        self.stack = xLSTMStack(stack_config(spec))
        head_in = E * self.n_tokens if spec.mixing == "independent" else E
        self.head = nn.Linear(head_in, h * Q)
        self.head_futr = nn.Linear(h * spec.n_futr, h * Q) if spec.n_futr else None

    def _tokens(self, t: Tensor) -> Tensor:
        """Channel-major values (N, L, ...) -> token inputs: patches (N, P, patch_len * ...) or (N, L * ...)."""
        if self.spec.mixing == "independent":
            return patchify(t, self.spec.patch_len, self.spec.patch_stride, self.pad)
        return t.reshape(t.shape[0], -1)

    def forward(self, batch: dict[str, Tensor]) -> Tensor:
        y, mean, std = self.revin.normalise(batch["y"])  # (B, L, C)
        trend = moving_average(y, self.spec.moving_avg)
        out = self._xlstm_forecast(batch, y - trend, trend)  # (B, C, h, Q) on the normalised scale
        return self.revin.denormalise(out.transpose(1, 2), mean, std)  # (B, h, C, Q)

    def _xlstm_forecast(self, batch: dict[str, Tensor], seasonal: Tensor, trend: Tensor) -> Tensor:
        """Normalised seasonal and trend parts (B, L, C) -> the xLSTM path's forecast (B, C, h, Q)."""
        spec = self.spec
        B, L, C = seasonal.shape
        z = self.embed_seasonal(self._tokens(_channel_major(seasonal))) + self.embed_trend(
            self._tokens(_channel_major(trend))
        )  # (B*C, P, E) independent, (B*C, E) variates
        if self.embed_hist is not None:
            z = z + self.embed_hist(self._tokens(_channel_major(batch["x_hist"])))
        if self.embed_stat is not None:
            stat = self.embed_stat(batch["x_stat"].reshape(B * C, -1))  # (B*C, E)
            z = z + (stat[:, None] if spec.mixing == "independent" else stat)
        if spec.mixing == "independent":
            out, _ = self.stack(self.norm(z))  # (B*C, P, E)
            out = self.head(out.reshape(B * C, -1))  # (B*C, h*Q)
            out = out.reshape(B, C, spec.h, spec.n_outputs)
        else:
            z = z.reshape(B, C, -1) + self.channel_embedding  # (B, C, E): one token per variate
            out, _ = self.stack(self.norm(z))  # (B, C, E)
            out = self.head(out).reshape(B, C, spec.h, spec.n_outputs)
        if self.head_futr is not None:
            futr = _channel_major(batch["x_futr"]).reshape(B * C, -1)  # (B*C, h*F)
            out = out + self.head_futr(futr).reshape(B, C, spec.h, spec.n_outputs)
        return out


class XLSTMTimeLinear(XLSTMTime):
    """XLSTMTime whose xLSTM path refines a linear forecast (the xLSTM-Mixer idea, arXiv 2410.16928).

    A DLinear-style forecast (one linear map of the seasonal part and one of the trend, shared by every channel)
    is the base; the xLSTM path of :class:`XLSTMTime` adds a correction to it. The correction head starts at zero,
    so training begins from the linear model and the recurrent part only has to learn what the linear map misses;
    on small sets (ILI, ETTh2) this keeps the model from fitting noise early.
    """

    def __init__(self, spec: NetSpec):
        super().__init__(spec)
        L, h, Q = spec.input_size, spec.h, spec.n_outputs
        self.linear_seasonal = nn.Linear(L, h * Q)
        self.linear_trend = nn.Linear(L, h * Q)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, batch: dict[str, Tensor]) -> Tensor:
        spec = self.spec
        y, mean, std = self.revin.normalise(batch["y"])  # (B, L, C)
        B, L, C = y.shape
        trend = moving_average(y, spec.moving_avg)
        seasonal = y - trend
        base = self.linear_seasonal(_channel_major(seasonal).reshape(B * C, L)) + self.linear_trend(
            _channel_major(trend).reshape(B * C, L)
        )  # (B*C, h*Q)
        out = base.reshape(B, C, spec.h, spec.n_outputs) + self._xlstm_forecast(batch, seasonal, trend)
        return self.revin.denormalise(out.transpose(1, 2), mean, std)  # (B, h, C, Q)


class XLSTMMixer(nn.Module):
    """xLSTM-Mixer (Kraus et al., arXiv 2410.16928): a linear forecast per series, refined by mixing the series.

    Time mixing: an NLinear forecast (each window minus its last value, one linear map from look-back to horizon
    shared by every series, the last value added back). Joint mixing: each series' forecast is embedded as one
    token, a learnable soft-prompt token goes in front, and the stack runs over the series (with mixing="variates";
    with "independent" each series is its own two-token sequence, prompt and series). View mixing: the same stack
    also reads the tokens in reverse order; each series' two states are concatenated and mapped to the horizon.
    Unlike the paper's code, the reverse view is flipped back first, so both states belong to the same series (a
    bidirectional reading). ``moving_avg``, ``patch_len`` and ``patch_stride`` do not apply.
    """

    N_PROMPT_TOKENS = 1  # the paper's "initial embedding token"

    def __init__(self, spec: NetSpec):
        super().__init__()
        self.spec = _check_mixing(spec)
        E, L, h, Q = spec.embedding_dim, spec.input_size, spec.h, spec.n_outputs
        self.revin = revin_for(spec)
        self.time_mixing = nn.Linear(L, h)
        self.embed_forecast = nn.Linear(h, E)
        self.embed_hist = nn.Linear(L * spec.n_hist, E) if spec.n_hist else None
        self.embed_futr = nn.Linear(h * spec.n_futr, E) if spec.n_futr else None
        self.embed_stat = nn.Linear(spec.n_stat, E) if spec.n_stat else None
        self.prompt = nn.Parameter(0.01 * torch.randn(self.N_PROMPT_TOKENS, E))
        self.stack = xLSTMStack(stack_config(spec))
        self.head = nn.Linear(2 * E, h * Q)

    def forward(self, batch: dict[str, Tensor]) -> Tensor:
        spec = self.spec
        y, mean, std = self.revin.normalise(batch["y"])  # (B, L, C)
        B, L, C = y.shape
        series = _channel_major(y).reshape(B * C, L)
        last = series[:, -1:]  # (B*C, 1)
        linear = self.time_mixing(series - last) + last  # (B*C, h): the NLinear forecast
        z = self.embed_forecast(linear)  # (B*C, E)
        if self.embed_hist is not None:
            z = z + self.embed_hist(_channel_major(batch["x_hist"]).reshape(B * C, -1))
        if self.embed_futr is not None:
            z = z + self.embed_futr(_channel_major(batch["x_futr"]).reshape(B * C, -1))
        if self.embed_stat is not None:
            z = z + self.embed_stat(batch["x_stat"].reshape(B * C, -1))
        z = torch.cat([self.prompt.expand(B, -1, -1), z.reshape(B, C, -1)], dim=1)  # (B, M + C, E)
        forward_view, _ = self.stack(z)  # (B, M + C, E)
        reverse_view, _ = self.stack(z.flip(1))
        views = torch.cat([forward_view, reverse_view.flip(1)], dim=-1)[:, self.N_PROMPT_TOKENS :]  # (B, C, 2E)
        out = self.head(views).reshape(B, C, spec.h, spec.n_outputs)
        return self.revin.denormalise(out.transpose(1, 2), mean, std)  # (B, h, C, Q)


class XLSTMEncoder(nn.Module):
    """A plain xLSTM encoder: each time step (or patch) embedded linearly, the stack, a head on the last state.

    mixing="variates" feeds every channel's values at a step into one token (a multivariate encoder);
    "independent" runs one sequence per channel.
    """

    def __init__(self, spec: NetSpec):
        super().__init__()
        self.spec = _check_mixing(spec)
        E, h, Q = spec.embedding_dim, spec.h, spec.n_outputs
        self.revin = revin_for(spec)
        self.width = spec.n_channels if spec.mixing == "variates" else 1
        step_features = self.width * (1 + spec.n_hist)
        _, self.pad = patch_layout(spec.input_size, spec.patch_len, spec.patch_stride)
        self.embed = nn.Linear(step_features * spec.patch_len, E)
        self.embed_stat = nn.Linear(spec.n_stat * self.width, E) if spec.n_stat else None
        self.stack = xLSTMStack(stack_config(spec))
        self.head = nn.Linear(E, h * Q * self.width)
        self.head_futr = nn.Linear(h * spec.n_futr * self.width, h * Q * self.width) if spec.n_futr else None

    def forward(self, batch: dict[str, Tensor]) -> Tensor:
        spec = self.spec
        y, mean, std = self.revin.normalise(batch["y"])  # (B, L, C)
        B, L, C = y.shape
        feats = torch.cat([y.unsqueeze(-1), batch["x_hist"]], dim=-1)  # (B, L, C, 1+X)
        # One sequence per channel (B*C, L, 1+X), or all channels in each step's token (B, L, C*(1+X)).
        feats = _channel_major(feats) if spec.mixing == "independent" else feats.reshape(B, L, -1)
        N = feats.shape[0]
        z = self.embed(patchify(feats, spec.patch_len, spec.patch_stride, self.pad))  # (N, P, E)
        if self.embed_stat is not None:
            stat = batch["x_stat"]  # (B, C, S)
            stat = stat.reshape(B * C, -1) if spec.mixing == "independent" else stat.reshape(B, -1)
            z = z + self.embed_stat(stat)[:, None]
        out, _ = self.stack(z)  # (N, P, E)
        out = self.head(out[:, -1])  # (N, h*Q*width)
        if self.head_futr is not None:
            futr = batch["x_futr"]  # (B, h, C, F)
            futr = _channel_major(futr).reshape(N, -1) if spec.mixing == "independent" else futr.reshape(B, -1)
            out = out + self.head_futr(futr)
        out = (
            out.reshape(B, C, spec.h, spec.n_outputs)
            if spec.mixing == "independent"
            else out.reshape(B, spec.h, C, spec.n_outputs).transpose(1, 2)
        )
        return self.revin.denormalise(out.transpose(1, 2), mean, std)  # (B, h, C, Q)


class DLinear(nn.Module):
    """DLinear (Zeng et al., 2023), our own small version: decomposition, one linear map per component.

    Channel-independent and shared over channels; exogenous inputs are added through linear maps.
    """

    def __init__(self, spec: NetSpec):
        super().__init__()
        self.spec = spec
        L, h, Q = spec.input_size, spec.h, spec.n_outputs
        self.revin = revin_for(spec)
        self.seasonal = nn.Linear(L, h * Q)
        self.trend = nn.Linear(L, h * Q)
        self.hist = nn.Linear(L * spec.n_hist, h * Q) if spec.n_hist else None
        self.futr = nn.Linear(h * spec.n_futr, h * Q) if spec.n_futr else None
        self.stat = nn.Linear(spec.n_stat, h * Q) if spec.n_stat else None

    def forward(self, batch: dict[str, Tensor]) -> Tensor:
        spec = self.spec
        y, mean, std = self.revin.normalise(batch["y"])  # (B, L, C)
        B, L, C = y.shape
        trend = moving_average(y, spec.moving_avg)
        out = self.seasonal(_channel_major(y - trend).reshape(B * C, L)) + self.trend(
            _channel_major(trend).reshape(B * C, L)
        )  # (B*C, h*Q)
        if self.hist is not None:
            out = out + self.hist(_channel_major(batch["x_hist"]).reshape(B * C, -1))
        if self.futr is not None:
            out = out + self.futr(_channel_major(batch["x_futr"]).reshape(B * C, -1))
        if self.stat is not None:
            out = out + self.stat(batch["x_stat"].reshape(B * C, -1))
        out = out.reshape(B, C, spec.h, spec.n_outputs).transpose(1, 2)  # (B, h, C, Q)
        return self.revin.denormalise(out, mean, std)


MODELS: dict[str, type[nn.Module]] = {
    "xlstm_time": XLSTMTime,
    "xlstm_time_linear": XLSTMTimeLinear,
    "xlstm_mixer": XLSTMMixer,
    "xlstm_encoder": XLSTMEncoder,
    "dlinear": DLinear,
}
ALIASES = {
    "xlstm_time": "xLSTMTime",
    "xlstm_time_linear": "xLSTMTimeLinear",
    "xlstm_mixer": "xLSTMMixer",
    "xlstm_encoder": "xLSTMEncoder",
    "dlinear": "DLinear",
}


# Which settings a network reads: patches (xlstm_time's only when channel-independent) and the moving average.
_PATCHED_MIXINGS = {"xlstm_time": ("independent",), "xlstm_time_linear": ("independent",),
                    "xlstm_encoder": MIXINGS}  # fmt: skip
_DECOMPOSED = ("xlstm_time", "xlstm_time_linear", "dlinear")


def patch_len_for(model: str, patch_len: int | None) -> int:
    """patch_len, or the model's default: 1 for xlstm_encoder (one token per step), else 16."""
    return patch_len or (1 if model == "xlstm_encoder" else 16)


def uses_patches(model: str, mixing: str) -> bool:
    """Whether ``model`` with ``mixing`` cuts the look-back into patches (so patch_len and patch_stride matter)."""
    return mixing in _PATCHED_MIXINGS.get(model, ())


def uses_moving_average(model: str) -> bool:
    """Whether ``model`` decomposes the look-back by a moving average (so moving_avg matters)."""
    return model in _DECOMPOSED


def build_model(name: str, spec: NetSpec) -> nn.Module:
    """The network registered under ``name`` for ``spec``."""
    if name not in MODELS:
        raise ValueError(f"model must be one of {sorted(MODELS)}, got {name!r}")
    return MODELS[name](spec)
