"""The rules of ``im2im plan`` on hand-made fingerprints, and the commented YAML it writes."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from im2im_cli.plan import parse_time
from im2im_core.errors import ConfigError
from im2im_core.planning.commented_yaml import commented_yaml
from im2im_core.planning.fingerprint import Fingerprint, inscribed_diameters
from im2im_core.planning.plan import backbone, check_task
from im2im_core.planning.rules import (
    first_level,
    fit_to,
    normalization,
    patch_size,
    sampling,
    topology,
    unknown_z_spacing,
)


def _fingerprint(shape: list[int], spacing: list[float], known: bool = True, **fields) -> Fingerprint:
    return Fingerprint(data_path="d", layout="auto", input_dir="IM", target_dir="GT", reader="bioio",
                       dims="ZYX" if len(shape) == 3 else "YX", images=4, channels=1, shapes=[shape] * 4,
                       median_shape=shape, spacing=spacing, spacing_known=[not (len(shape) == 3 and i == 0 and not known)
                                                                           for i in range(len(shape))],
                       intensity={}, target=fields.pop("target", "mask"), **fields)


def test_topology_pools_z_only_once_its_spacing_is_within_twice_xy() -> None:
    plan, why = topology([32, 128, 128], [3.0, 1.0, 1.0])
    assert plan.strides[1] == [1, 2, 2] and plan.strides[2] == [2, 2, 2]  # Z at 3, XY at 2 after one pooling
    assert plan.kernels[0] == [1, 3, 3] and plan.kernels[1] == [3, 3, 3]
    assert plan.divisor == [8, 32, 32]  # Z pooled 3 times (once XY caught up, until 4 planes), XY 5 times
    assert "not pooled in the first level" in why


def test_topology_stops_at_feature_maps_of_four_pixels() -> None:
    plan, _ = topology([256, 256], [1.0, 1.0])
    assert len(plan.strides) - 1 == 6 and plan.divisor == [64, 64]
    plan, _ = topology([64, 256], [1.0, 1.0])
    assert [s[0] for s in plan.strides[1:]].count(2) == 4  # 64 -> 4: the short axis stops first


def test_patch_is_physically_isotropic_within_the_budget_and_the_image() -> None:
    patch, _ = patch_size(_fingerprint([40, 512, 512], [4.0, 1.0, 1.0]), "cpu")
    assert patch[0] <= 40 and patch[1] == patch[2] and patch[1] > 2 * patch[0]
    assert patch[0] * patch[1] * patch[2] <= 96 * 96 * 32
    small, _ = patch_size(_fingerprint([100, 120], [1.0, 1.0]), "cpu")
    assert small == [100, 120]  # the whole median image fits the budget
    assert fit_to([100, 120], [16, 16], [100, 120]) == [96, 112]


def test_unknown_z_spacing_follows_the_shape_and_known_spacing_wins() -> None:
    spacing, why = unknown_z_spacing(_fingerprint([16, 64, 64], [1.0, 1.0, 1.0], known=False))
    assert spacing == [4.0, 1.0, 1.0] and "unknown" in why
    spacing, why = unknown_z_spacing(_fingerprint([16, 64, 64], [0.3, 0.3, 0.3]))
    assert spacing == [0.3, 0.3, 0.3] and why is None


def test_inscribed_diameters_measure_thickness_not_length_and_skip_cut_objects() -> None:
    labels = np.zeros((40, 60), np.int64)
    labels[5:10, 2:50] = 1  # a rod 5 thick, 48 long
    labels[10:15, 2:50] = 2  # touching it: measured apart
    labels[20:37, 20:37] = 3  # a square of 17
    labels[30:40, 50:52] = 4  # cut by the border: left out
    assert inscribed_diameters(labels, [1.0, 1.0]) == [5.0, 5.0, 17.0]
    assert inscribed_diameters(labels * (labels == 4), [1.0, 1.0]) == [1.0]  # only cut objects: kept
    stack = np.zeros((5, 20, 20), np.int64)
    stack[1:4, 3:18, 3:18] = 1  # 3 planes of 3 um, 15 pixels of 1 um: 9 um thick
    assert inscribed_diameters(stack, [3.0, 1.0, 1.0]) == [11.0]  # 2 * (3 planes' 6 um) - 1 pixel


def test_the_cpu_plan_starts_at_half_resolution_only_where_the_thinnest_objects_allow() -> None:
    plan, _ = topology([256, 256], [1.0, 1.0])
    thick = _fingerprint([520, 696], [1, 1], target="labels", object_width={"p5": 13.0})
    assert first_level(thick, "cpu", plan)[0] and "13 px" in first_level(thick, "cpu", plan)[1]
    assert not first_level(thick, "gpu", plan)[0]  # nnU-Net's full resolution where compute allows
    thin = _fingerprint([520, 696], [1, 1], target="labels", object_width={"p5": 4.7})
    assert not first_level(thin, "cpu", plan)[0] and "under 6" in first_level(thin, "cpu", plan)[1]
    assert not first_level(_fingerprint([520, 696], [1, 1], target="intensity"), "cpu", plan)[0]  # nothing to measure
    flat, _ = topology([32, 128, 128], [3.0, 1.0, 1.0])
    stack = _fingerprint([40, 512, 512], [3.0, 1.0, 1.0], target="labels", object_width={"p5": 20.0})
    assert not first_level(stack, "cpu", flat)[0]  # Z is not pooled with XY at first
    assert plan.filters("cpu", strided_first=True)[:2] == [16, 32] and plan.filters("cpu")[:2] == [8, 16]


def test_both_first_levels_build_the_same_poolings() -> None:
    plan, _ = topology([256, 256], [1.0, 1.0])
    strided = backbone(plan, "cpu", strided_first=True)
    assert strided["class_path"] == "monai.networks.nets.UNet" and strided["init_args"]["strides"] == [2] * 6
    assert strided["init_args"]["channels"] == [16, 32, 64, 128, 128, 128, 128]
    assert strided["init_args"]["norm"] == "instance"
    full = backbone(plan, "cpu", strided_first=False)
    assert full["class_path"] == "monai.networks.nets.DynUNet" and full["init_args"]["strides"] == plan.strides


def test_search_variants_edit_the_strided_unet_and_swap_the_first_level() -> None:
    from im2im_core.planning.plan import Plan
    from im2im_core.planning.search import variants

    plan, _ = topology([256, 256], [1.0, 1.0])
    config = {"model": {"init_args": {"backbone": backbone(plan, "cpu", True),
                                      "optimizer": {"init_args": {"lr": 1e-3}}}},
              "data": {"patch_size": [256, 256], "batch_size": 8}}
    planned = Plan(config, {}, {"topology": {"kernels": plan.kernels, "strides": plan.strides}, "strided_first": True,
                                "device": "cpu"})
    found = {name: p.config for name, p in variants(planned)}
    assert list(found) == ["planned", "lr_x3", "half_patch", "one_level_fewer", "lr_div3", "other_first_level"]
    assert found["half_patch"]["data"] == {"patch_size": [192, 192], "batch_size": 16}  # 0.56 of the area, not 0.25
    fewer = found["one_level_fewer"]["model"]["init_args"]["backbone"]["init_args"]
    assert fewer["strides"] == [2] * 5 and len(fewer["channels"]) == 6
    assert found["other_first_level"]["model"]["init_args"]["backbone"]["class_path"] == "monai.networks.nets.DynUNet"
    assert found["planned"]["model"]["init_args"]["backbone"]["class_path"] == "monai.networks.nets.UNet"  # untouched


def test_normalization_and_sampling_follow_the_foreground() -> None:
    assert normalization(_fingerprint([64, 64], [1, 1], foreground_fraction=0.3))[0]["upper"] == 99.5
    assert normalization(_fingerprint([64, 64], [1, 1], foreground_fraction=0.001))[0]["upper"] == 99.9
    assert sampling(0.05)[0] == {"sampling": "uniform"}
    assert sampling(0.8)[0] == {"sampling": "foreground", "foreground_fraction": 0.67}


def test_a_task_the_targets_cannot_train_is_refused() -> None:
    with pytest.raises(ConfigError, match="binary masks"):
        check_task("instance", _fingerprint([64, 64], [1, 1], target="mask"))
    with pytest.raises(ConfigError, match="expected one of"):
        check_task("classify", _fingerprint([64, 64], [1, 1]))
    check_task("segmentation", _fingerprint([64, 64], [1, 1], target="labels"))


def test_commented_yaml_loads_back_to_the_config() -> None:
    config = {"trainer": {"max_time": "00:00:10:00", "callbacks": [{"class_path": "a.B", "init_args": {"n": 1}}]},
              "model": {"init_args": {"kernel_size": [[1, 3, 3], [3, 3, 3]], "roi_size": None, "flag": "yes"}},
              "data": {"normalize": [{"class_path": "P", "init_args": {"keys": ["IM"], "lower": 0.5}}], "f": 1e-6}}
    text = commented_yaml(config, {"model.init_args.kernel_size": "a reason " * 30, "data.normalize": "why"})
    assert yaml.safe_load(text) == config
    assert "  # why\n  normalize:" in text and text.count("# a reason") >= 1


@pytest.mark.parametrize(("text", "seconds"), [("90", 90), ("45m", 2700), ("1h30m", 5400), ("00:30:00", 1800),
                                               ("01:00:00:00", 86400)])
def test_time_budgets_are_read_in_the_usual_forms(text: str, seconds: float) -> None:
    assert parse_time(text) == seconds
    with pytest.raises(ConfigError, match="--time"):
        parse_time("soon")
