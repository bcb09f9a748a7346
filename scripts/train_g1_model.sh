#!/usr/bin/env bash
# Reproduce engines/astra_g1.* (the G1 humanoid model) on a CPU: train, export, evaluate.
# Episodes 1-33 of ../shared/data/g1_pick_bottle train (a tenth of them validate during training);
# 34-40 are held out for the evaluation. Frames: frozen repeats dropped, then 15 Hz (every second
# 30 Hz row), 64x64, a 4-frame context. Each command resumes where it stopped (--resume).
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH=$PWD OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} OMP_WAIT_POLICY=PASSIVE
py=.venv/bin/python
data=${G1_DATA:-../shared/data/g1_pick_bottle}
runs=${G1_RUNS:-/work/runs/g1}
frames="--frozen drop --frame-period 0.0667 --cache-dir $runs/frames"

$py -m astra_ros.training.train --data "$data" --episodes 1-33 $frames --preset g1 \
    --set action_modulation=true --out "$runs/run" --minutes "${G1_MINUTES:-60}" --lr 1e-3 \
    --rollout-prob 0 --ema-decay 0.99 --val-every 200 --val-fraction 0.1 --seed 0 --precision fp32 --resume
