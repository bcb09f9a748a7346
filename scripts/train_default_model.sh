#!/usr/bin/env bash
# Reproduce the shipped default model (engines/astra_small.*) on a CPU machine (about 9 hours on 2 cores).
# Run from the repository root after `make setup`. Stages 1-3 and 8 ran with bf16 autocast on a CPU with
# native bf16 (precision auto picks fp32 on one without it), stages 4-7 in fp32 on an AVX2-only CPU. On a GPU
# machine the same files train on CUDA (device auto, bf16 autocast); add --device cpu to stay on the CPU.
set -euo pipefail
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
bin=.venv/bin
bags=data/bags
run=runs/small_kuka
mkdir -p "$bags"

# Training data (seed 0) and held-out evaluation data (seed 1000, never seen in training).
[ -d "$bags/kuka_train" ] || $bin/astra-record-sim --env kuka --episodes 60 --steps 300 --seed 0 --size 64 --out "$bags/kuka_train"
[ -d "$bags/kuka_heldout" ] || $bin/astra-record-sim --env kuka --episodes 10 --steps 300 --seed 1000 --size 64 --out "$bags/kuka_heldout"

# The eight stages, each a YAML file under config/train/kuka_small/ on top of the shared
# config/train/kuka_small.yaml (what each stage changes and why is written in its file).
for stage in 1_constant 2_decay 3_rollout 4_action 5_structure 6_sharp 7_state 8_kinematics; do
  $bin/astra-train --config config/train/kuka_small.yaml "config/train/kuka_small/$stage.yaml"
done

# Ship: the EMA weights stored in float16, the ONNX step graph (weight matrices in float16) with its
# sidecar; then the held-out evaluation and the plan benchmark (the oracle once, then the model).
$bin/python -m astra_ros.model.checkpoint "${run}_kinematics/model.pt" engines/astra_small.pt --fp16
$bin/astra-export --checkpoint engines/astra_small.pt --out engines/astra_small.onnx --weights fp16
$bin/astra-eval --model engines/astra_small.onnx --bag "$bags/kuka_heldout" --context 4 --horizon 16 \
  --max-windows 120 --out eval_out/heldout
[ -f runs/plan_oracle/plan_bench.json ] || $bin/astra-plan-bench --model copy_last --planners oracle,stay,random \
  --out runs/plan_oracle
$bin/astra-plan-bench --model engines/astra_small.onnx --planners model --reuse runs/plan_oracle/plan_bench.json \
  --out runs/plan_model
