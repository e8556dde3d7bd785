#!/usr/bin/env bash
# The EmbedSeg figures of docs/results.md: prepare the splits, train on CPU for a fixed wall
# time, predict the held-out images, score AP. Usage (from the im2im clone):
#   plugins/im2im-embedseg/scripts/run_results.sh WORKDIR DATASET MINUTES [FIT ARGS...]
# DATASET: bbbc039 or dsb2018. One torch thread per run (on a shared 2-core machine a second
# thread mostly waits); set OMP_NUM_THREADS to change it. For CPU minutes the network is the
# preset's branched ERFNet with half the channels at the two lower levels (16, 32, 64), and
# centres are approximate medoids (batched; exact for nuclei up to 256 pixels).
set -euo pipefail
work=$(realpath -m "$1"); dataset=$2; minutes=$3; shift 3  # the rest goes to im2im fit
here=$(cd "$(dirname "$0")" && pwd)
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
[ -d "$work/data/$dataset" ] || python "$here/prepare_data.py" "$work/data"
run="$work/runs/$dataset"; mkdir -p "$run"; cd "$run"
case $dataset in
  bbbc039) extra=(--data.val_fraction 0.1 --trainer.check_val_every_n_epoch 15) ;;
  dsb2018) extra=(--data.val_fraction 0 --trainer.limit_val_batches 0) ;;  # 2 training images: no validation split
esac
start=$(date +%s)
im2im fit --config instanceseg_2d --data.data_path "$work/data/$dataset/train" \
  --data.patch_size '[128,128]' --data.batch_size 8 --data.samples_per_image 4 \
  --model.init_args.optimizer.init_args.lr 0.001 --model.init_args.backbone.init_args.channels '[16,32,64]' \
  --model.init_args.centre approximate_medoid \
  --trainer.max_epochs -1 --trainer.max_time "$(printf "00:%02d:%02d:00" $((minutes / 60)) $((minutes % 60)))" --trainer.accelerator cpu \
  --trainer.enable_progress_bar false "${extra[@]}" "$@"
echo "fit wall time: $(( $(date +%s) - start )) s"
config=$(ls -d im2im_runs/instanceseg_2d/lightning_logs/version_* | sort -V | tail -1)/config.yaml  # the run's own config
im2im predict --config "$config" --ckpt_path im2im_runs/instanceseg_2d/checkpoints/last.ckpt \
  --data.predict_path "$work/data/$dataset/test/IM" --data.patch_size '[128,128]' \
  --prediction.inference.roi_size '[256,256]' --prediction.overwrite true --trainer.accelerator cpu \
  --trainer.enable_progress_bar false
im2im evaluate --pred im2im_runs/instanceseg_2d/predictions --gt "$work/data/$dataset/test/GT" \
  --kind labels --csv "$run/scores.csv" --overwrite
