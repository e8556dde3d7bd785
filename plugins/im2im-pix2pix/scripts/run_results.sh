#!/usr/bin/env bash
# The Pix2Pix vs FCN figures of docs/results.md ("Pix2Pix (im2im-pix2pix)"), on CPU.
#
#   bash plugins/im2im-pix2pix/scripts/run_results.sh [RESULTS_DIR]    (default /tmp/im2im_pix2pix_results)
#
# Small budgets for a 2-core CPU machine: 2D, 64 x 64 patches, fnet depth 3 with 16 channels for
# every generator, 600 generator updates (batches of 8 patches) per run; Pix2Pix makes 2
# optimizer steps per batch, so its max_steps is 1200. "from FCN": Pix2Pix whose generator starts
# from the FCN run, 300 more batches (600 steps); "FCN, 900 batches": the FCN run resumed for the
# same 300 more batches, the control for "from FCN". Each run works in its own folder (the presets
# write to ./im2im_runs/<preset>); a run with a scores.csv is skipped, and with RUNS="name ..." set
# only those runs are made (two shells can then share the work). Scores: im2im evaluate with --normalize percentile (prediction and
# target each mapped to [0, 1] by their 0.5 and 99.5 percentiles, as training normalizes them).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
R="$(realpath -m "${1:-/tmp/im2im_pix2pix_results}")"
D="$R/data"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"  # on a shared 2-core machine one thread is the fastest
export IM2IM_PLUGINS=pix2pix

[ -d "$D/examplehuman" ] || python "$HERE/prepare_results_data.py" --out "$D"

SMALL_FNET=(depth 3 mult_chan 16)
generator_args() {  # generator_args KEY: --model.init_args.KEY.init_args.depth 3 ...
  printf -- "--model.init_args.$1.init_args.%s %s " "${SMALL_FNET[@]}"
}
COMMON=(--data.val_fraction 0 --trainer.limit_val_batches 0 --trainer.max_epochs -1
        --trainer.accelerator cpu --trainer.enable_progress_bar false --data.batch_size 8 --data.samples_per_image 4)
BINARIZE_MASK='[{"class_path": "Binarized", "init_args": {"keys": ["IM"]}}, {"class_path": "PercentileNormalized", "init_args": {"keys": ["GT"]}}]'

# run NAME PRESET DATASET PATCH STEPS [extra fit args...]: fit, predict the held-out set, evaluate
run() {
  local name=$1 preset=$2 dataset=$3 patch=$4 steps=$5; shift 5
  local key=backbone; [[ $preset == labelfree_2d ]] || key=generator
  [ -f "$R/$name/scores.csv" ] && return 0
  [[ -z ${RUNS:-} || " $RUNS " == *" $name "* ]] || return 0
  rm -rf "${R:?}/$name"  # an unfinished earlier attempt
  mkdir -p "$R/$name" && cd "$R/$name"
  local start=$SECONDS
  # shellcheck disable=SC2046
  im2im fit --config "$preset" --data.data_path "$D/$dataset/train" --data.patch_size "$patch" \
      $(generator_args $key) "${COMMON[@]}" --trainer.max_steps "$steps" "$@" > fit.log 2>&1
  echo "$name: fit $((SECONDS - start)) s" | tee -a "$R/times.txt"
  local run_dir="im2im_runs/$preset"
  im2im predict --config "$run_dir/lightning_logs/version_0/config.yaml" --ckpt_path "$run_dir/checkpoints/last.ckpt" \
      --data.predict_path "$D/$dataset/holdout" --prediction.output_dir pred --prediction.overwrite true \
      --trainer.accelerator cpu --trainer.enable_progress_bar false > predict.log 2>&1
  im2im evaluate --pred pred --gt "$D/$dataset/holdout/GT" --normalize percentile --csv scores.csv --overwrite | tee evaluate.txt
}

# ExampleHuman: cell stain to DNA stain, 12 training tiles of 128 x 128, 64 x 64 patches
run eh_fcn labelfree_2d examplehuman "[64,64]" 600
run eh_pix2pix synthetic_2d_from_mask examplehuman "[64,64]" 1200 --data.normalize null
run eh_pix2pix_from_fcn synthetic_2d_from_mask examplehuman "[64,64]" 600 --data.normalize null \
    --model.init_args.generator_checkpoint "$R/eh_fcn/im2im_runs/labelfree_2d/checkpoints/last.ckpt"

# BBBC039: mask to Hoechst image, 40 training fields, 64 x 64 patches
run bbbc_fcn labelfree_2d bbbc039 "[64,64]" 600 --data.normalize "$BINARIZE_MASK"
run bbbc_pix2pix synthetic_2d_from_mask bbbc039 "[64,64]" 1200
run bbbc_pix2pix_from_fcn synthetic_2d_from_mask bbbc039 "[64,64]" 600 \
    --model.init_args.generator_checkpoint "$R/bbbc_fcn/im2im_runs/labelfree_2d/checkpoints/last.ckpt"

# Controls for "from FCN": the FCN runs resumed for the same 300 more batches (900 in all)
run eh_fcn_900 labelfree_2d examplehuman "[64,64]" 900 --ckpt_path "$R/eh_fcn/im2im_runs/labelfree_2d/checkpoints/last.ckpt"
run bbbc_fcn_900 labelfree_2d bbbc039 "[64,64]" 900 --data.normalize "$BINARIZE_MASK" \
    --ckpt_path "$R/bbbc_fcn/im2im_runs/labelfree_2d/checkpoints/last.ckpt"
