"""Networks get spatial_dims and channels from the data section when a config leaves them out."""

from __future__ import annotations

import pytest
import yaml

from im2im_cli.network_arguments import data_channels, merged_config, network_options


def options(model: dict, data: dict, *extra: str) -> set[str]:
    config = merged_config(["fit", "--config", yaml.safe_dump({"model": model, "data": data}), *extra])
    return set(network_options(config))


UNET = {"class_path": "monai.networks.nets.UNet", "init_args": {"channels": [8, 16], "strides": [2]}}


def test_fcn_backbone_follows_the_data() -> None:
    model = {"class_path": "im2im_core.frameworks.fcn.FCN", "init_args": {"backbone": UNET}}
    assert options(model, {"dims": "ZYX", "target": "mask"}) == {
        "--model.init_args.spatial_dims=3",
        "--model.init_args.backbone.init_args.spatial_dims=3",
        "--model.init_args.backbone.init_args.in_channels=1",
        "--model.init_args.backbone.init_args.out_channels=1",
    }


def test_values_a_config_or_the_command_line_sets_are_kept() -> None:
    backbone = {"class_path": "monai.networks.nets.UNet",
                "init_args": {"spatial_dims": 2, "in_channels": 2, "channels": [8, 16], "strides": [2]}}
    model = {"class_path": "im2im_core.frameworks.fcn.FCN", "init_args": {"backbone": backbone}}
    found = options(model, {"dims": "CYX", "C": [0, 1], "target": "intensity"},
                    "--model.init_args.backbone.init_args.out_channels", "4")
    assert found == {"--model.init_args.spatial_dims=2"}


@pytest.mark.parametrize(("data", "expected"), [
    ({"dims": "YX"}, (2, 1, 1)),
    ({"dims": "YXS", "target": "intensity"}, (2, 3, 3)),            # RGB: the colour samples are channels
    ({"dims": "CZYX", "C": [0, 2], "target": "intensity"}, (3, 2, 2)),
    ({"dims": "CZYX", "target": "labels"}, (3, None, None)),       # channels of the files: unknown before reading
    ({"dims": "YX", "layout": "images"}, (2, 1, 1)),               # self-supervised: the input is the target
])
def test_data_channels(data: dict, expected: tuple) -> None:
    assert data_channels(data) == expected


def test_embedseg_backbone_gets_offsets_sigmas_and_seed() -> None:
    model = {"class_path": "im2im_embedseg.framework.EmbedSeg",
             "init_args": {"backbone": {"class_path": "im2im_embedseg.erfnet.BranchedERFNet"}}}
    found = options(model, {"dims": "ZYX", "target": "labels"})
    assert "--model.init_args.backbone.init_args.out_channels=7" in found  # 2 * 3 + 1
    assert "--model.init_args.backbone.init_args.spatial_dims=3" in found


def test_pix2pix_discriminator_sees_input_and_output_stacked() -> None:
    model = {"class_path": "im2im_pix2pix.pix2pix.Pix2Pix",
             "init_args": {"generator": {"class_path": "im2im_core.networks.fnet.FNet"},
                           "discriminator": {"class_path": "im2im_core.networks.patchgan.PatchGAN"}}}
    found = options(model, {"dims": "YXS", "target": "intensity"})
    assert {"--model.init_args.generator.init_args.in_channels=3", "--model.init_args.generator.init_args.out_channels=3",
            "--model.init_args.discriminator.init_args.in_channels=6",
            "--model.init_args.discriminator.init_args.spatial_dims=2"} <= found


def test_cyclegan_domains_follow_the_data_through_utom_kwargs() -> None:
    model = {"class_path": "im2im_utom.utom.UTOM", "init_args": {}}  # UTOM passes them on to CycleGAN
    assert options(model, {"dims": "YX", "layout": "unpaired", "target": "intensity"}) == {
        "--model.init_args.spatial_dims=2", "--model.init_args.channels_a=1", "--model.init_args.channels_b=1"}


def test_a_config_without_the_networks_dimensions_trains(tmp_path, monkeypatch) -> None:
    from im2im_cli.main import main
    from im2im_core.testing import copy_pairs

    data = copy_pairs(tmp_path / "data", slice(0, 2))
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({
        "trainer": {"max_steps": 1, "logger": False, "enable_checkpointing": False, "enable_progress_bar": False,
                    "limit_val_batches": 0},
        "model": {"class_path": "FCN", "init_args": {"backbone": {"class_path": "UNet", "init_args": UNET["init_args"]}}},
        "data": {"data_path": str(data), "dims": "YX", "patch_size": [32, 32], "batch_size": 4}}))
    monkeypatch.chdir(tmp_path)
    assert main(["fit", "--config", str(config)]) == 0
