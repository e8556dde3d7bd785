#!/usr/bin/env bash
# The im2im-utom figures of docs/results.md: CycleGAN and UTOM, same seed (the presets' 0) and budget,
# on BBBC039 (unpaired images and masks) and the NEUBIAS widefield/confocal nucleus (unpaired halves).
#   bash plugins/im2im-utom/scripts/results.sh OUT [SHARED]      (from the im2im clone; OUT is created)
# Budgets fit a 2-core CPU: small networks and patches (the presets' defaults are CycleGAN's full size).
set -euo pipefail
OUT=$(realpath -m "$1"); SHARED=$(realpath "${2:-../shared/data}")
HERE=$(cd "$(dirname "$0")" && pwd)
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}  # one thread: on the shared 2 cores, 2 threads ran 8x slower
mkdir -p "$OUT"
python "$HERE/prepare_results_data.py" --shared "$SHARED" --out "$OUT/data"
cd "$OUT"
QUIET=(--trainer.logger false --trainer.enable_progress_bar false --trainer.enable_model_summary false --trainer.accelerator cpu)

small() {  # generators: $1 filters, $2 residual blocks; discriminators: $3 filters, $4 layers
  for g in generator_ab generator_ba; do
    echo --model.init_args.$g.init_args.channels "$1" --model.init_args.$g.init_args.n_blocks "$2"; done
  for d in discriminator_a discriminator_b; do
    echo --model.init_args.$d.init_args.channels "$3" --model.init_args.$d.init_args.n_layers "$4"; done
}

# ---- BBBC039: images to masks, 600 batches (1200 optimizer steps) of 2 patches 96 x 96
for variant in cyclegan utom; do
  preset=unpaired_seg_2d_$variant
  /usr/bin/time -f "$preset fit wall %e s" im2im fit --config $preset --data.data_path data/bbbc039_unpaired/train \
    --data.patch_size "[96,96]" --data.samples_per_image 2 --data.batch_size 2 $(small 8 3 16 3) \
    --trainer.max_steps 1200 "${QUIET[@]}"
  im2im predict --config im2im_runs/$preset/config.yaml --ckpt_path im2im_runs/$preset/checkpoints/last.ckpt \
    --data.predict_path data/bbbc039_unpaired/test/IM --prediction.output_dir pred/$preset --prediction.overwrite true "${QUIET[@]}"
  im2im evaluate --pred pred/$preset --gt data/bbbc039_unpaired/test/GT --csv pred/$preset.csv --overwrite
done

# ---- widefield to confocal, 3D: 300 batches (600 optimizer steps) of one 16 x 32 x 32 patch
for variant in cyclegan utom; do
  preset=unpaired_modality_3d_$variant
  /usr/bin/time -f "$preset fit wall %e s" im2im fit --config $preset --data.data_path data/widefield_confocal_unpaired/train \
    --data.patch_size "[16,32,32]" --data.samples_per_image 1 --data.batch_size 1 $(small 8 2 8 2) \
    --trainer.max_steps 600 --trainer.max_epochs 1000 "${QUIET[@]}"
  for test in test test_left; do
    im2im predict --config im2im_runs/$preset/config.yaml --ckpt_path im2im_runs/$preset/checkpoints/last.ckpt \
      --data.predict_path data/widefield_confocal_unpaired/$test/IM --prediction.output_dir pred/${preset}_$test \
      --prediction.overwrite true "${QUIET[@]}"
    im2im evaluate --pred pred/${preset}_$test --gt data/widefield_confocal_unpaired/$test/GT --normalize percentile \
      --csv pred/${preset}_$test.csv --overwrite
  done
done
# the same with patches drawn on each domain's content (above Otsu) half of the time, in its own
# folder (the presets write to ./im2im_runs/<preset>): --data.sampling content
mkdir -p content
for variant in cyclegan utom; do
  preset=unpaired_modality_3d_$variant
  (cd content
   /usr/bin/time -f "$preset content fit wall %e s" im2im fit --config $preset \
     --data.data_path ../data/widefield_confocal_unpaired/train --data.sampling content \
     --data.patch_size "[16,32,32]" --data.samples_per_image 1 --data.batch_size 1 $(small 8 2 8 2) \
     --trainer.max_steps 600 --trainer.max_epochs 1000 "${QUIET[@]}"
   for test in test test_left; do
     im2im predict --config im2im_runs/$preset/config.yaml --ckpt_path im2im_runs/$preset/checkpoints/last.ckpt \
       --data.predict_path ../data/widefield_confocal_unpaired/$test/IM --prediction.output_dir ../pred/${preset}_content_$test \
       --prediction.overwrite true "${QUIET[@]}"
     im2im evaluate --pred ../pred/${preset}_content_$test --gt ../data/widefield_confocal_unpaired/$test/GT \
       --normalize percentile --csv ../pred/${preset}_content_$test.csv --overwrite
   done)
done
# context: the widefield stack itself scored as a confocal prediction
for test in test test_left; do
  mkdir -p pred/widefield_input_$test
  cp data/widefield_confocal_unpaired/$test/IM/nucleus.tif pred/widefield_input_$test/nucleus_pred.tif
  im2im evaluate --pred pred/widefield_input_$test --gt data/widefield_confocal_unpaired/$test/GT --normalize percentile \
    --kind intensity --csv pred/widefield_input_$test.csv --overwrite
done
