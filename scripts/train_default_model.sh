#!/usr/bin/env bash
# Reproduce the shipped default model (engines/astra_small.*) on a CPU machine (about 2 hours on 2 cores).
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

# Train (110 minutes of optimisation steps; --resume continues an interrupted run exactly).
$bin/astra-train --bags "$bags/kuka_train" --preset small --out "$run" --minutes 110 --lr 1e-3 --rollout-prob 0.3 --ema-decay 0.99 --val-every 250 --seed 0 --resume

# Ship: the EMA weights, the ONNX step graph with its sidecar, and the held-out evaluation.
cp "$run/model.pt" engines/astra_small.pt
$bin/astra-export --checkpoint engines/astra_small.pt --out engines/astra_small.onnx
$bin/astra-eval --model engines/astra_small.onnx --bag "$bags/kuka_heldout" --context 4 --horizon 16 \
  --max-windows 120 --out eval_out/heldout
