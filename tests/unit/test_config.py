"""Config loading: presets by name, short class names, clear errors."""

from __future__ import annotations

import json

import pytest
import yaml

from im2im_cli.config import expand_arguments, load_config
from im2im_cli.errors import summarize_parse_error
from im2im_core.errors import ConfigError
from im2im_core.plugins import get_registry


def test_preset_name_loads_with_full_import_paths_and_package_paths():
    config = yaml.safe_load(load_config("demo", get_registry()))
    assert config["model"]["class_path"] == "im2im_core.frameworks.fcn.FCN"
    assert config["model"]["init_args"]["backbone"]["class_path"] == "monai.networks.nets.unet.UNet"
    assert config["data"]["data_path"].endswith("demo_data/train")
    assert "${PRESET_DIR}" not in str(config)


def test_config_file_short_names_resolved(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model:\n  class_path: FCN\n  init_args:\n    backbone:\n      class_path: fnet\n")
    config = yaml.safe_load(load_config(str(path), get_registry()))
    assert config["model"]["init_args"]["backbone"]["class_path"] == "im2im_core.networks.fnet.FNet"


def test_unknown_backbone_names_file_key_and_known_names(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model:\n  init_args:\n    backbone:\n      class_path: fnett\n")
    with pytest.raises(ConfigError) as error:
        load_config(str(path), get_registry())
    message = str(error.value)
    assert str(path) in message and "'fnett'" in message and "model.init_args.backbone" in message and "fnet," in message


def test_unknown_config_lists_presets():
    with pytest.raises(ConfigError, match="neither a file nor a registered preset; presets: .*semanticseg_2d"):
        load_config("no_such_config", get_registry())


def test_not_a_mapping(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(str(path), get_registry())


def test_overrides_resolve_short_names_and_keep_others():
    args = expand_arguments(["fit", "--model.backbone", "fnet", "--data.batch_size=4", "--trainer.fast_dev_run"], get_registry())
    assert args == ["fit", "--model.backbone", "im2im_core.networks.fnet.FNet", "--data.batch_size", "4",
                    "--trainer.fast_dev_run"]
    with pytest.raises(ConfigError, match="command line: unknown name 'nonet'"):
        expand_arguments(["fit", "--model.init_args.backbone.class_path=nonet"], get_registry())


def test_short_names_inside_inline_json_overrides_are_resolved():
    """``--data.normalize '[{"class_path": "StandardNormalized", ...}]'`` failed: only whole values were resolved."""
    args = expand_arguments(["fit", "--data.normalize", '[{"class_path": "StandardNormalized", "init_args": {"keys": ["IM"]}}]',
                             "--model.init_args.backbone", '{"class_path": "fnet", "init_args": {"depth": 2}}',
                             "--data.patch_size", "[32, 64]"], get_registry())
    assert json.loads(args[2]) == [{"class_path": "monai.transforms.intensity.dictionary.NormalizeIntensityd",
                                    "init_args": {"keys": ["IM"]}}]
    assert json.loads(args[4]) == {"class_path": "im2im_core.networks.fnet.FNet", "init_args": {"depth": 2}}
    assert json.loads(args[6]) == [32, 64]
    with pytest.raises(ConfigError, match="command line: unknown name 'Normalised'"):
        expand_arguments(["fit", "--data.normalize", '[{"class_path": "Normalised"}]'], get_registry())


def test_parse_error_summary_names_key_class_and_reason():
    message = (
        'Parser key "model":\n  Does not validate against any of the Union subtypes\n  Subtypes: [a, b]\n  Errors:\n'
        "    - Problem with given class_path 'im2im_core.frameworks.fcn.FCN':\n        Option 'lr' is not accepted\n"
        "    - Expected a <class 'NoneType'>\n  Given value type: <class 'dict'>\n"
    )
    assert summarize_parse_error(message) == "config key 'model' (im2im_core.frameworks.fcn.FCN): Option 'lr' is not accepted"
