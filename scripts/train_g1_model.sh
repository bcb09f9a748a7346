#!/usr/bin/env bash
# Reproduce engines/astra_g1.* (the G1 humanoid model) on a CPU: train, export, evaluate.
# The episodes follow the held-out protocol in config/splits/g1_pick_bottle.yaml (one file for
# training and evaluation; docs/real_robot_data.md): every present episode that it does not hold out
# trains; the latest recording session (later) and episodes interleaved with the training ones
# (neighbour, also validated during training) are held out and evaluated separately. The recipe is
# config/train/g1.yaml; each variant in config/train/g1/ (plain, augment) trains at the same budget
# and both are evaluated on both splits; G1_SHIP names the one shipped. Each training command
# resumes where it stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
bin=.venv/bin
data=${G1_DATA:-../shared/data/g1_pick_bottle}
runs=${G1_RUNS:-runs/g1}
split=config/splits/g1_pick_bottle.yaml
train_episodes=$($bin/python -m astra_ros.data.splits "$split" train)
later_episodes=$($bin/python -m astra_ros.data.splits "$split" later)
neighbour_episodes=$($bin/python -m astra_ros.data.splits "$split" neighbour)
data_args=(--data "$data" --episodes "$train_episodes" --val-episodes "$neighbour_episodes" --cache-dir "$runs/frames")
evaluate=(--data "$data" --cache-dir "$runs/frames" --context 4 --horizon 8 --max-windows 120 --no-progress)

for variant in ${G1_VARIANTS:-plain augment}; do
  run=$runs/$variant
  $bin/astra-train --config config/train/g1.yaml "config/train/g1/$variant.yaml" "${data_args[@]}" --out "$run"
  $bin/astra-eval --model "$run/model.pt" --backend torch "${evaluate[@]}" --episodes "$later_episodes" --out "$run/eval_later"
  $bin/astra-eval --model "$run/model.pt" --backend torch "${evaluate[@]}" --episodes "$neighbour_episodes" --out "$run/eval_neighbour"
done

# Ship: the EMA weights stored in float16, the ONNX step graph with its sidecar, both held-out evaluations.
ship=$runs/${G1_SHIP:-augment}
$bin/python -m astra_ros.model.checkpoint "$ship/model.pt" engines/astra_g1.pt --fp16
$bin/astra-export --checkpoint engines/astra_g1.pt --out engines/astra_g1.onnx --weights fp16
$bin/astra-eval --model engines/astra_g1.onnx "${evaluate[@]}" --episodes "$later_episodes" --out eval_out/g1_later
$bin/astra-eval --model engines/astra_g1.onnx "${evaluate[@]}" --episodes "$neighbour_episodes" --out eval_out/g1_neighbour
