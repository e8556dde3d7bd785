#!/usr/bin/env bash
# Baseline beside the EmbedSeg figures of docs/results.md: the core's semanticseg_2d preset
# (2D U-Net, Dice + CE on masks) trained on the same split, patches, batch and wall time,
# instances = connected components of its mask (objects under 10 px removed, as EmbedSeg's
# min_size). Usage (from the im2im clone):
#   plugins/im2im-embedseg/scripts/run_baseline_unet.sh WORKDIR DATASET MINUTES
set -euo pipefail
work=$(realpath -m "$1"); dataset=$2; minutes=$3
here=$(cd "$(dirname "$0")" && pwd)
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
[ -d "$work/data/$dataset" ] || python "$here/prepare_data.py" "$work/data"
run="$work/runs/${dataset}_unet"; mkdir -p "$run"; cd "$run"
case $dataset in
  bbbc039) extra=(--data.val_fraction 0.1 --trainer.check_val_every_n_epoch 15) ;;
  dsb2018) extra=(--data.val_fraction 0 --trainer.limit_val_batches 0) ;;
esac
start=$(date +%s)
im2im fit --config semanticseg_2d --data.data_path "$work/data/$dataset/train" \
  --data.patch_size '[128,128]' --data.batch_size 8 --data.samples_per_image 4 \
  --trainer.max_epochs -1 --trainer.max_time "$(printf "00:%02d:%02d:00" $((minutes / 60)) $((minutes % 60)))" --trainer.accelerator cpu \
  --trainer.enable_progress_bar false "${extra[@]}"
echo "fit wall time: $(( $(date +%s) - start )) s"
config=$(ls -d im2im_runs/semanticseg_2d/lightning_logs/version_* | sort -V | tail -1)/config.yaml
im2im predict --config "$config" --ckpt_path im2im_runs/semanticseg_2d/checkpoints/last.ckpt \
  --data.predict_path "$work/data/$dataset/test/IM" --data.patch_size '[128,128]' \
  --prediction.inference.roi_size '[256,256]' --prediction.overwrite true --prediction.evaluate false \
  --prediction.postprocess.activation sigmoid --prediction.postprocess.threshold 0.5 \
  --prediction.postprocess.label true --prediction.postprocess.min_size 10 \
  --trainer.accelerator cpu --trainer.enable_progress_bar false
im2im evaluate --pred im2im_runs/semanticseg_2d/predictions --gt "$work/data/$dataset/test/GT" \
  --kind labels --csv "$run/scores.csv" --overwrite
