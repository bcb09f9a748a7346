#!/usr/bin/env bash
# Screen model levers at equal budget (issue 25; docs/screening.md): for each LEVER, train from scratch
# with config/train/screen.yaml + config/train/screen/LEVER.yaml (same seed, steps and windows), score
# the EMA weights on the held-out bag with astra-eval (PSNR, SSIM, command ranking, link IoU, end
# effector), optionally plan with astra-plan-bench (PLAN=1), and record the result with its commands
# in docs/results/screening/LEVER.json. Nothing else heavy should run meanwhile (2 cores).
#   scripts/screen_levers.sh baseline state motion ...      (after `make setup`; resumes a stopped run)
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
bin=.venv/bin
bags=data/bags
[ -d "$bags/kuka_train" ] || $bin/astra-record-sim --env kuka --episodes 60 --steps 300 --seed 0 --size 64 --out "$bags/kuka_train"
[ -d "$bags/kuka_heldout" ] || $bin/astra-record-sim --env kuka --episodes 10 --steps 300 --seed 1000 --size 64 --out "$bags/kuka_heldout"
cpu="$($bin/python -c 'from astra_ros.runtime.cpu import cpu_summary as c; s = c(); print(s["model"], s["cores"], "cores,", s["class"])')"
for lever in "$@"; do
  run=runs/screen/$lever
  train=(astra-train --config config/train/screen.yaml "config/train/screen/$lever.yaml")
  evaluate=(astra-eval --model "$run/model.pt" --backend torch --bag "$bags/kuka_heldout" --context 4 --horizon 8
    --max-windows 120 --out "$run/eval" --no-progress)
  [ -f "$run/model.pt" ] || $bin/"${train[@]}"
  [ -f "$run/eval/metrics.json" ] || $bin/"${evaluate[@]}"
  plan_args=()
  if [ "${PLAN:-0}" = 1 ]; then
    plan=(astra-plan-bench --model "$run/model.pt" --backend torch --planners model --goals 12 --out "$run/plan" --no-progress)
    [ -f "$run/plan/plan_bench.json" ] || $bin/"${plan[@]}"
    plan_args=(--plan "$run/plan" --plan-command "${plan[*]}")
  fi
  $bin/python scripts/record_screening.py "$lever" --run "$run" --eval "$run/eval" --cpu "$cpu" \
    --train-command "${train[*]}" --eval-command "${evaluate[*]}" "${plan_args[@]}"
done
