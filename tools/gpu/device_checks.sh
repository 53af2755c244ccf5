#!/usr/bin/env bash
# The checks a lent GPU session runs, as one call of the device tool (see tools/gpu/README.md):
#   bash tools/gpu/device_checks.sh                 (from the repository root; carry .whl for the baselines)
# 1. lays the packages out as the wheels would (xlstm_seq + mapped folders, bench/ as xlstm_seq_bench) in /tmp/site,
#    installs the baseline wheels;
# 2. builds every CUDA extension in parallel in the background (ours first, then FlashRNN's and xlstm's);
# 3. runs the Triton mLSTM tests (all of them compile on the GPU there) and the gpu-marked sLSTM and forecaster tests;
# 4. runs `kernels bench --op mlstm` and `--op slstm` (and the mLSTM launch-setting sweep, stage mlstm_sweep);
# 5. stage forecast_nf (not in the default STAGES): the long-horizon forecasting benchmark beside neuralforecast's
#    PatchTST and DLinear on the GPU, for FORECAST_DATASETS (default weather) with FORECAST_OVERRIDES; it needs the
#    data sets copied to data/ and the neuralforecast wheels in .whl, both carried (NOTES.md, "Forecasting");
# 6. stage lm_lease (not in the default STAGES, and best alone): the 125M xLSTM-vs-GPT-2 comparison in about 9 minutes
#    (configs/lm/lease-125m.yaml) on the data tools/gpu/pack_lm_lease.sh put into data/; LM_LEASE_OVERRIDES adds dotted
#    overrides, LM_LEASE_DRY_RUN=1 shrinks it to seconds on any machine (README.md, "Language modelling in one lease").
# Every stage has its own time limit, so a hang costs that stage only; logs and tables land in $OUT.
set -u
REPO=$(pwd)
OUT=${OUT:-/tmp/device_out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 MPLBACKEND=Agg TORCH_EXTENSIONS_DIR=/tmp/torch_ext
export XLSTM_SEQ_REVISION=${XLSTM_SEQ_REVISION:-$(cat "$REPO/.revision" 2>/dev/null || echo unknown)}
SITE=${SITE:-/tmp/site}
T_MLSTM_TESTS=${T_MLSTM_TESTS:-200}
T_SLSTM_TESTS=${T_SLSTM_TESTS:-300}
T_MLSTM_BENCH=${T_MLSTM_BENCH:-150}
T_SLSTM_BENCH=${T_SLSTM_BENCH:-240}
T_MLSTM_TFLA=${T_MLSTM_TFLA:-60}
T_MLSTM_SWEEP=${T_MLSTM_SWEEP:-240}
STAGES=${STAGES:-"mlstm_tests slstm_tests forecast_gpu mlstm_bench slstm_bench mlstm_tfla mlstm_sweep"}
# Background builds: every CUDA extension of the kernel stages; the lease alone needs only its own model's kernels.
if [ -z "${PREWARM+set}" ]; then
  PREWARM="ours baselines"
  [ "$STAGES" = "lm_lease" ] && PREWARM="lm"
  [ -n "${LM_LEASE_DRY_RUN:-}" ] && PREWARM=""
fi
stamp() { echo "== $(date -u +%H:%M:%S) $*"; }

stamp setup
rm -rf "$SITE" && mkdir -p "$SITE"
cp -r "$REPO/xlstm_seq" "$SITE/"
for d in kernels forecasting rl lm; do cp -r "$REPO/$d" "$SITE/xlstm_seq/$d"; done
[ -d "$REPO/bench" ] && cp -r "$REPO/bench" "$SITE/xlstm_seq_bench"  # the benchmark suite (its own distribution)
if ls "$REPO"/.whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target "$SITE" "$REPO"/.whl/*.whl
fi
export PYTHONPATH=$SITE
[ -d "$REPO/data" ] && export XLSTM_SEQ_DATA=${XLSTM_SEQ_DATA:-$REPO/data}  # the carried copy of ../shared/data
{ nvidia-smi; python3 -c "import torch, triton; print(torch.__version__, torch.version.cuda, triton.__version__)"; nvcc --version | tail -2; } > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"

cd /tmp  # so that the checkout's unmapped xlstm_seq/ folder never shadows $SITE
stamp "prewarm start: ${PREWARM:-nothing}"
case " $PREWARM " in *" ours "*)
  ( python3 "$REPO/tools/gpu/prewarm_builds.py" ours; touch /tmp/ours_ready ) > "$OUT/prewarm.log" 2>&1 & ;; esac
case " $PREWARM " in *" lm "*)  # the lease's sLSTM and Triton mLSTM kernels, built while the data and GPT-2 run
  python3 "$REPO/tools/gpu/prewarm_builds.py" lm > "$OUT/prewarm.log" 2>&1 & ;; esac
case " $PREWARM " in *" baselines "*)
  ( python3 "$REPO/tools/gpu/prewarm_builds.py" flashrnn-first
    python3 "$REPO/tools/gpu/prewarm_builds.py" baselines ) > "$OUT/prewarm_baselines.log" 2>&1 & ;; esac
PYTEST=(python3 -m pytest -c "$REPO/pyproject.toml" --rootdir "$REPO" -p no:cacheprovider -q -rfEs --tb=short)
for stage in $STAGES; do
  case $stage in
    mlstm_tests)
      stamp mlstm tests
      timeout "$T_MLSTM_TESTS" "${PYTEST[@]}" "$REPO/tests/kernels/test_mlstm_triton.py" \
        "$REPO/tests/kernels/test_mlstm_bwd_layout.py" 2>&1 | tee -a "$OUT/tests.log" | tail -40 ;;
    slstm_tests)
      stamp waiting for our sLSTM builds
      for _ in $(seq 1 "${T_WAIT_BUILDS:-150}"); do [ -f /tmp/ours_ready ] && break; sleep 1; done
      cat "$OUT/prewarm.log"
      stamp slstm tests
      timeout "$T_SLSTM_TESTS" "${PYTEST[@]}" -m gpu "$REPO/tests/kernels/test_slstm_cuda.py" 2>&1 | tee -a "$OUT/tests.log" | tail -40 ;;
    forecast_gpu)  # the forecaster on CUDA (mLSTM and sLSTM backbones, CPU-loaded predictions equal); 2 passed on an H200, 2026-12-04
      stamp forecaster gpu tests
      timeout "${T_FORECAST_GPU:-120}" "${PYTEST[@]}" -m gpu "$REPO/tests/forecasting/test_forecaster_device.py" 2>&1 \
        | tee -a "$OUT/tests.log" | tail -20 ;;
    forecast_nf)  # the long-horizon grid beside neuralforecast; ray_stub stands in for Ray (its wheel exceeds the carry)
      stamp "forecast benchmark beside neuralforecast: ${FORECAST_DATASETS:-weather} ${FORECAST_OVERRIDES:-}"
      # shellcheck disable=SC2086  # FORECAST_OVERRIDES holds several overrides
      PYTHONPATH=$SITE:$REPO/tools/gpu/ray_stub timeout "${T_FORECAST_NF:-540}" python3 -m xlstm_seq.cli.main \
        forecast benchmark --config "$REPO/configs/forecasting/long_horizon.yaml" "datasets=[${FORECAST_DATASETS:-weather}]" \
        "baselines=[seasonal_naive,dlinear,nf_patchtst,nf_dlinear]" fit_time_steps=0 "device=${FORECAST_DEVICE:-cuda}" \
        ${FORECAST_OVERRIDES:-} --no-track --out "$OUT/forecasting_gpu_${FORECAST_DATASETS:-weather}.md" 2>&1 \
        | grep -av "step/s" | tee -a "$OUT/forecast.log" | tail -30 ;;
    mlstm_bench)
      stamp mlstm bench
      timeout "$T_MLSTM_BENCH" python3 -m xlstm_seq.cli.main kernels bench --op mlstm --device cuda --no-track \
        --providers "${MLSTM_BENCH_PROVIDERS:-ours,reference,sdpa}" --out "$OUT/mlstm_gpu.md" 2>&1 | tee -a "$OUT/bench.log" | tail -5 ;;
    mlstm_tfla)  # its own process: Triton 3.6's LLVM aborted on compiling triton_xl_chunk once (2026-12-04)
      stamp mlstm bench, mlstm_kernels
      timeout "$T_MLSTM_TFLA" python3 -m xlstm_seq.cli.main kernels bench --op mlstm --device cuda --no-track \
        --providers xl_chunk_siging,limit_chunk,xl_chunk --out "$OUT/mlstm_gpu_tfla.md" 2>&1 | tee -a "$OUT/bench.log" | tail -5 ;;
    slstm_bench)
      stamp slstm bench
      timeout "$T_SLSTM_BENCH" python3 -m xlstm_seq.cli.main kernels bench --op slstm --device cuda --no-track \
        --out "$OUT/slstm_gpu.md" 2>&1 | tee -a "$OUT/bench.log" | tail -5 ;;
    lm_lease)  # phases with their own limits inside (bench/lm/lease.py); the report is rewritten after each phase
      stamp "lm lease ${LM_LEASE_OVERRIDES:-}"
      # The sLSTM's multiblock kernel (head dim 192) runs under backend "cuda" only once confirmed on a GPU: its bf16
      # test at the model's shape runs in the background while the data and GPT-2 phases go on, and the marker it
      # writes on success lets the xLSTM phases use it (kernels/slstm/fused.py, multiblock_enabled); else the report
      # names the reference loop. XLSTM_SEQ_SLSTM_MULTIBLOCK=1 from outside skips the check.
      if [ -z "${LM_LEASE_DRY_RUN:-}" ] && [ -z "${XLSTM_SEQ_SLSTM_MULTIBLOCK+set}" ]; then
        export XLSTM_SEQ_SLSTM_MULTIBLOCK=/tmp/slstm_multiblock_ok
        ( timeout "${T_MULTIBLOCK_CHECK:-240}" "${PYTEST[@]}" -m gpu \
            -k "multiblock_bfloat16 and B16 and T63 and D192" "$REPO/tests/kernels/test_slstm_cuda.py" \
            > "$OUT/multiblock_check.log" 2>&1 && touch /tmp/slstm_multiblock_ok ) &
      fi
      lease_args=(--config "$REPO/configs/lm/lease-125m.yaml" --no-track "out=$OUT/lease_125m.md")
      if [ -n "${LM_LEASE_DRY_RUN:-}" ]; then  # tiny models, a few hundred tokens, three items per set, on the CPU
        mapfile -t dry < <(python3 -m xlstm_seq_bench.lm.lease dry-run-overrides /tmp/lm_lease_dry_run)
        lease_args+=("${dry[@]}")
      fi
      # shellcheck disable=SC2086  # LM_LEASE_OVERRIDES holds several overrides
      timeout "${T_LM_LEASE:-560}" python3 -m xlstm_seq.cli.main lm benchmark "${lease_args[@]}" ${LM_LEASE_OVERRIDES:-} \
        2>&1 | tee -a "$OUT/lm_lease.log" | tail -80 ;;
    mlstm_sweep)  # launch settings of the Triton mLSTM (NOTES.md): timings per kernel and accuracy per setting
      stamp mlstm sweep
      # shellcheck disable=SC2086  # MLSTM_SWEEP_ARGS may hold several arguments (e.g. "--variants bwd")
      timeout "$T_MLSTM_SWEEP" python3 "$REPO/tools/gpu/mlstm_sweep.py" ${MLSTM_SWEEP_ARGS:-} --out "$OUT/mlstm_gpu_sweep.md" 2>&1 \
        | tee -a "$OUT/bench.log" | tail -15 ;;
  esac
done
stamp done
for f in "$OUT/prewarm.log" "$OUT/prewarm_baselines.log"; do [ -f "$f" ] && cat "$f"; done | tail -30
for f in "$OUT"/*.md; do echo "#### $f"; grep "^|" "$f"; done
