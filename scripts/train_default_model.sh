#!/usr/bin/env bash
# Reproduce the shipped default model (engines/astra_small.*) on a CPU machine (about 6.6 hours on 2 cores).
# Run from the repository root after `make setup`. Stages 1-3 ran with bf16 autocast on a CPU with native
# bf16 (--precision auto picks fp32 on one without it), stages 4-6 in fp32 on an AVX2-only CPU.
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

# Stage 4: from stage 3 with action modulation switched on (zero-initialised: the model starts
# unchanged), 900 more rollout-heavy steps (about 95 minutes in fp32 on a 2-core AVX2 CPU).
$bin/astra-train --bags "$bags/kuka_train" --preset small --out "${run}_action" --init "${run}_rollout/model.pt" --steps 900 --lr 3e-4 --lr-schedule cosine --lr-min 1e-5 --rollout-prob 0.6 --rollout-passes 3 --ema-decay 0.99 --val-every 300 --seed 3 --precision fp32 --resume --set action_modulation=true

# Stage 5: from stage 4, 600 steps with a structural term, 0.2 * (1 - SSIM) of the predicted frames,
# so rollouts keep the arm's shape instead of blurring (about 50 minutes).
$bin/astra-train --bags "$bags/kuka_train" --preset small --out "${run}_structure" --init "${run}_action/model.pt" --steps 600 --lr 2e-4 --lr-schedule cosine --lr-min 1e-5 --rollout-prob 0.6 --rollout-passes 3 --ema-decay 0.99 --val-every 300 --seed 4 --precision fp32 --structure-weight 0.2 --resume --set action_modulation=true

# Stage 6: from stage 5, 500 steps with 90% of targets at noise level 1 (what the 1-step sampler sees:
# the motion must come from the history and the command), same structural term (about 37 minutes).
$bin/astra-train --bags "$bags/kuka_train" --preset small --out "${run}_sharp" --init "${run}_structure/model.pt" --steps 500 --lr 1.5e-4 --lr-schedule cosine --lr-min 1e-5 --rollout-prob 0.6 --rollout-passes 3 --full-noise-prob 0.9 --structure-weight 0.2 --ema-decay 0.99 --val-every 250 --seed 5 --precision fp32 --resume --set action_modulation=true

# Ship: the EMA weights, the ONNX step graph with its sidecar, and the held-out evaluation.
cp "${run}_sharp/model.pt" engines/astra_small.pt
$bin/astra-export --checkpoint engines/astra_small.pt --out engines/astra_small.onnx
$bin/astra-eval --model engines/astra_small.onnx --bag "$bags/kuka_heldout" --context 4 --horizon 16 \
  --max-windows 120 --out eval_out/heldout
