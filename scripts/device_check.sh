#!/usr/bin/env bash
# One prepared check for a GPU machine: CUDA tests, GPU benchmarks and a short bf16 training run.
#
#   bash scripts/device_check.sh --prepare   # here: copy the pure-Python packages it needs (PyYAML,
#                                            # tqdm, the bag-reader modules, pytest) into .device_check_deps/
#   bash scripts/device_check.sh OUT_DIR     # there: every result goes into OUT_DIR
#
# The GPU machine has Python 3.12 with torch (CUDA), numpy, onnx, onnxruntime (CPU) and OpenCV, no
# package registry and no ROS: the project runs from this source tree (PYTHONPATH) with the carried
# .device_check_deps/ (about 10 MB). Each step has its own timeout; all together stay under 9 minutes.
# Without CUDA (e.g. CUDA_VISIBLE_DEVICES= bash scripts/device_check.sh /tmp/dc) it reports "no CUDA"
# and dry-runs the benchmark and training code on the CPU at the tiny preset.
set -uo pipefail
cd "$(dirname "$0")/.."
DEPS=.device_check_deps
PY=${PYTHON:-python3}

if [ "${1:-}" = "--prepare" ]; then
  site=$(.venv/bin/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
  rm -rf "$DEPS" && mkdir -p "$DEPS"
  for pkg in yaml tqdm rosbags pytest _pytest pluggy iniconfig packaging py.py; do
    cp -r "$site/$pkg" "$DEPS/"
  done
  find "$DEPS" \( -name __pycache__ -o -name '*.so' \) -prune -exec rm -rf {} +
  du -sh "$DEPS"
  exit 0
fi

OUT=${1:?usage: scripts/device_check.sh OUT_DIR | --prepare}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
export PYTHONPATH="$PWD:$PWD/$DEPS${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONDONTWRITEBYTECODE=1
exec > >(tee "$OUT/device_check.log") 2>&1
: > "$OUT/steps.txt"

step() {  # step NAME SECONDS COMMAND...: run with a timeout, record its exit status
  local name=$1 limit=$2
  shift 2
  echo "== $name (at most $limit s): $*"
  local start=$SECONDS
  timeout --kill-after=5 "$limit" "$@"
  local rc=$?
  echo "$name rc=$rc seconds=$((SECONDS - start))" | tee -a "$OUT/steps.txt"
}

[ -d "$DEPS" ] || echo "warning: $DEPS/ missing (run --prepare where .venv exists and carry it)"
step environment 30 "$PY" scripts/device_bench.py env "$OUT/environment.json"
cuda=$("$PY" -c "import torch; print(int(torch.cuda.is_available()))" 2>/dev/null || echo 0)
step cuda_tests 100 "$PY" -m pytest -q -p no:cacheprovider -k cuda test/test_cuda.py \
  --junitxml="$OUT/cuda_tests.xml"
if [ "$cuda" = 1 ]; then
  step model_bench 140 "$PY" scripts/device_bench.py model "$OUT/model_bench.json" --presets small base
  step train_gpu_bf16 75 "$PY" scripts/device_bench.py train "$OUT/train_gpu.json" --device cuda --steps 40
  step train_gpu_bf16_compile 80 "$PY" scripts/device_bench.py train "$OUT/train_gpu_compile.json" \
    --device cuda --steps 40 --compile
  step train_cpu 60 "$PY" scripts/device_bench.py train "$OUT/train_cpu.json" --device cpu --steps 5
else
  echo "no CUDA: torch.cuda.is_available() is False; the CUDA tests skip and the GPU numbers are not measured."
  echo "Dry run of the benchmark and training code on the CPU (tiny preset; the numbers mean nothing)."
  step model_bench_dry_run 120 "$PY" scripts/device_bench.py model "$OUT/model_bench.json" --device cpu \
    --presets tiny --repeats 1 --batches 1
  step train_cpu_dry_run 120 "$PY" scripts/device_bench.py train "$OUT/train_cpu.json" --device cpu \
    --preset tiny --steps 3
fi

"$PY" - "$OUT" <<'PYEOF'
import json, sys
from pathlib import Path

out = Path(sys.argv[1])
def load(name):
    path = out / name
    return json.loads(path.read_text()) if path.exists() else None
env, lines = load("environment.json") or {}, []
lines.append(f"# device check: {env.get('gpu', 'no CUDA')} (torch {env.get('torch')}, Python {env.get('python')})")
for preset in load("model_bench.json") or []:
    lines.append(f"## {preset['preset']}: {preset['params_m']} M params, {preset['gflop_per_step']} GFLOP/step, "
                 f"cached step {preset['cached_vs_recompute']}x faster than recomputing {preset['max_history']} frames")
    lines.append(f"predicted frames/s (horizon 8): {preset['predicted_frames_per_s_horizon8']}")
    for row in preset["rows"]:
        lines.append(f"- {row['precision']} batch {row['batch']}: {row['step_ms']} ms/step, {row['gflops']} GFLOP/s, "
                     f"MFU {100 * row['mfu_of_measured_peak']:.1f}% of the measured {row['matmul_peak_gflops']} GFLOP/s matmul")
runs = {name: load(f"train_{name}.json") for name in ("gpu", "gpu_compile", "cpu")}
for name, run in runs.items():
    if run:
        lines.append(f"train {name}: {run['steps_per_s']} steps/s ({run['device']}, bf16={run['bf16']}, "
                     f"compile={run['compile']}, {run['preset']}, batch {run['batch_size']}, window {run['window']})")
if runs["gpu"] and runs["cpu"] and runs["cpu"]["steps_per_s"]:
    lines.append(f"GPU/CPU training steps/s: {runs['gpu']['steps_per_s'] / runs['cpu']['steps_per_s']:.1f}x")
lines.append("steps: " + "; ".join((out / "steps.txt").read_text().split("\n")).strip("; "))
(out / "summary.md").write_text("\n".join(lines) + "\n")
print("\n".join(lines))
PYEOF
echo "device check done: $OUT"
