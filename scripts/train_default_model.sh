#!/usr/bin/env bash
# Reproduce the shipped default model (engines/astra_small.*) on a CPU machine (about 3.7 hours on 2 cores).
# Run from the repository root after `make setup`.
set -euo pipefail
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
bin=.venv/bin
bags=data/bags
run=runs/small_kuka
mkdir -p "$bags"

# Training data (seed 0) and held-out evaluation data (seed 1000, never seen in training).
[ -d "$bags/kuka_train" ] || $bin/astra-record-sim --env kuka --episodes 60 --steps 300 --seed 0 --size 64 --out "$bags/kuka_train"
[ -d "$bags/kuka_heldout" ] || $bin/astra-record-sim --env kuka --episodes 10 --steps 300 --seed 1000 --size 64 --out "$bags/kuka_heldout"

# Stage 1: 110 minutes at a constant learning rate (--resume continues an interrupted run exactly).
$bin/astra-train --bags "$bags/kuka_train" --preset small --out "$run" --minutes 110 --lr 1e-3 --rollout-prob 0.3 --ema-decay 0.99 --val-every 250 --seed 0 --resume

# Stage 2: from stage 1's EMA weights, 1800 steps with a cosine decay to 1e-5 (about 70 minutes).
$bin/astra-train --bags "$bags/kuka_train" --preset small --out "${run}_decay" --init "$run/model.pt" --steps 1800 --lr 6e-4 --lr-schedule cosine --lr-min 1e-5 --rollout-prob 0.3 --ema-decay 0.99 --val-every 250 --seed 1 --resume

# Stage 3: from stage 2, 800 steps with more training on the model's own rollouts (about 40 minutes).
$bin/astra-train --bags "$bags/kuka_train" --preset small --out "${run}_rollout" --init "${run}_decay/model.pt" --steps 800 --lr 3e-4 --lr-schedule cosine --lr-min 1e-5 --rollout-prob 0.6 --rollout-passes 3 --ema-decay 0.99 --val-every 200 --seed 2 --resume

# Ship: the EMA weights, the ONNX step graph with its sidecar, and the held-out evaluation.
cp "${run}_rollout/model.pt" engines/astra_small.pt
$bin/astra-export --checkpoint engines/astra_small.pt --out engines/astra_small.onnx
$bin/astra-eval --model engines/astra_small.onnx --bag "$bags/kuka_heldout" --context 4 --horizon 16 \
  --max-windows 120 --out eval_out/heldout
