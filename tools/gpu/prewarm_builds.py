"""Builds, in parallel, every CUDA extension that the GPU tests and the sLSTM benchmark load (lent-GPU runs).

Each build is one subprocess (torch.utils.cpp_extension caches it on disk under TORCH_EXTENSIONS_DIR), so the tests
and the benchmark that follow load finished builds instead of compiling them one after another. Prints one line per
build: target, seconds, ok or the error's last line.
Usage: python3 tools/gpu/prewarm_builds.py ours|flashrnn-first|baselines|lm
(lm: one forward and backward of a two-block stack at the lease's 125M xLSTM widths, bf16, so that its sLSTM build and
its Triton mLSTM kernels are in the on-disk caches before the lease trains it.)
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

# (head dim, heads, kernel variant) per dtype: the shapes of tests/kernels/test_slstm_cuda.py's gpu tests and of
# `--op slstm` (the multiblock kernel above head dim 128, and beside the fused one at 6 x 128).
TEST_KEYS = [(16, 2, "auto"), (32, 2, "auto"), (64, 3, "auto"), (128, 1, "auto"), (48, 2, "auto"), (64, 2, "auto")]
TEST_KEYS += [(192, 4, "auto"), (256, 3, "auto"), (160, 2, "auto"), (128, 6, "multiblock")]
BENCH_KEYS = [(192, 4, "auto"), (64, 12, "auto"), (128, 6, "auto"), (256, 3, "auto")]

OURS = (
    "import torch; from xlstm_seq.kernels.slstm.cuda_loader import load_extension; "
    "load_extension({D}, {H}, torch.{dtype}, 'cuda', '{variant}')"
)
FLASHRNN = (
    "import torch; from flashrnn import flashrnn; "
    "x = torch.randn(16, 4, 4, {H}, {D}, device='cuda', dtype=torch.bfloat16); "
    "R = torch.randn(4, {H}, {D}, {D}, device='cuda', dtype=torch.bfloat16); "
    "b = torch.randn(4, {H}, {D}, device='cuda', dtype=torch.bfloat16); "
    "flashrnn(x, R, b, function='slstm', backend='cuda_fused', dtype='bfloat16')"
)
XLSTM = (
    "import torch; from xlstm.blocks.slstm.cell import sLSTMCell, sLSTMCellConfig; "
    "c = sLSTMCell(sLSTMCellConfig(hidden_size={D} * {H}, num_heads={H}, backend='cuda', dtype='bfloat16', "
    "batch_size=16)).cuda(); c(torch.randn(16, 4, 4 * {D} * {H}, device='cuda', dtype=torch.bfloat16))"
)
# The widths of configs/lm/lease-125m.yaml's xLSTM (embedding 768, 4 heads): the same kernels, two blocks.
LM = """
import torch
from xlstm_seq.kernels.slstm.cuda_loader import load_extension
# the multiblock sLSTM kernel by name: backend "auto" uses it only once the stage's check has passed
load_extension(192, 4, torch.bfloat16, "cuda", "multiblock")
from xlstm_seq.config import xLSTMConfig
from xlstm_seq.stack import xLSTMStack
stack = xLSTMStack(xLSTMConfig(embedding_dim=768, num_blocks=2, slstm_at=[1], num_heads=4, backend="auto")).cuda()
x = torch.randn(2, 256, 768, device="cuda", requires_grad=True)
with torch.autocast("cuda", dtype=torch.bfloat16):
    y, _ = stack(x)
y.float().square().mean().backward()
torch.cuda.synchronize()
"""


def main() -> int:
    which = sys.argv[1] if len(sys.argv) > 1 else "ours"
    targets = []
    if which == "ours":
        dtypes = ("float32", "bfloat16")
        targets += [
            (f"ours d{D} h{H} {v} {dt}", OURS.format(D=D, H=H, dtype=dt, variant=v))
            for dt in dtypes
            for D, H, v in TEST_KEYS
        ]
        targets += [
            (f"ours d{D} h{H} {v} bfloat16", OURS.format(D=D, H=H, dtype="bfloat16", variant=v))
            for D, H, v in BENCH_KEYS
            if (D, H, v) not in TEST_KEYS
        ]
    elif which == "lm":
        targets.append(("lm xLSTM e768 h4 bfloat16 (sLSTM head dim 192, mLSTM head dim 384)", LM))
    elif which == "flashrnn-first":  # builds FlashRNN's shared gpu_info2 module alone: parallel builds of it collide
        targets.append(("flashrnn d64 h12", FLASHRNN.format(D=64, H=12)))
    else:
        # the official baselines at the benchmark's shapes (FlashRNN's d64 h12 is built by flashrnn-first)
        for D, H, _ in BENCH_KEYS:
            if (D, H) != (64, 12):
                targets.append((f"flashrnn d{D} h{H}", FLASHRNN.format(D=D, H=H)))
        for D, H, _ in BENCH_KEYS:
            targets.append((f"xlstm d{D} h{H}", XLSTM.format(D=D, H=H)))
    env = {**os.environ, "MAX_JOBS": "2"}
    start = time.perf_counter()
    procs = [
        (
            name,
            time.perf_counter(),
            subprocess.Popen(
                [sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
            ),
        )
        for name, code in targets
    ]
    failed = 0
    for name, t0, proc in procs:
        out, _ = proc.communicate()
        last = (out.strip().splitlines() or ["(no output)"])[-1]
        status = "ok" if proc.returncode == 0 else f"FAILED rc={proc.returncode}: {last[:300]}"
        failed += proc.returncode != 0
        print(f"{name}: {time.perf_counter() - t0:.1f} s {status}", flush=True)
    print(f"prewarm: {len(targets)} builds, {failed} failed, {time.perf_counter() - start:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
