"""Pairing inputs with targets in the folder and CSV layouts."""

from __future__ import annotations

from pathlib import Path

import pytest

from im2im_core.data.layouts import paired_samples
from im2im_core.errors import DataError


def _touch(*paths: Path) -> None:
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")


def test_subfolders_pair_by_name(tmp_path):
    _touch(tmp_path / "IM/a.tif", tmp_path / "IM/b.tif", tmp_path / "GT/a.tif", tmp_path / "GT/b.tif")
    samples = paired_samples(tmp_path)
    assert [(Path(s["IM"]).name, Path(s["GT"]).parent.name) for s in samples] == [("a.tif", "GT"), ("b.tif", "GT")]


def test_custom_subfolder_names(tmp_path):
    _touch(tmp_path / "images/a.tif", tmp_path / "masks/a.tif")
    samples = paired_samples(tmp_path, input_dir="images", target_dir="masks")
    assert Path(samples[0]["GT"]) == tmp_path / "masks/a.tif"


def test_missing_target_names_the_input(tmp_path):
    _touch(tmp_path / "IM/a.tif", tmp_path / "IM/b.tif", tmp_path / "GT/a.tif")
    with pytest.raises(DataError, match=r"no target for input .*IM/b.tif"):
        paired_samples(tmp_path)
    assert len(paired_samples(tmp_path, need_target=False)) == 2


def test_suffix_layout_with_costmap(tmp_path):
    _touch(tmp_path / "x_IM.tif", tmp_path / "x_GT.tif", tmp_path / "x_CM.tif", tmp_path / "y_IM.tiff", tmp_path / "y_GT.tiff")
    samples = paired_samples(tmp_path)
    assert [sorted(s) for s in samples] == [["CM", "GT", "IM"], ["GT", "IM"]]


def test_csv_layout_relative_paths_and_missing_file(tmp_path):
    _touch(tmp_path / "a.tif", tmp_path / "a_mask.tif")
    table = tmp_path / "pairs.csv"
    table.write_text("input,target\na.tif,a_mask.tif\n")
    assert paired_samples(table)[0]["GT"] == str(tmp_path / "a_mask.tif")
    table.write_text("input,target\na.tif,gone.tif\n")
    with pytest.raises(DataError, match=r"pairs.csv, line 2: target file not found: .*gone.tif"):
        paired_samples(table)


def test_empty_folder(tmp_path):
    (tmp_path / "IM").mkdir()
    with pytest.raises(DataError, match="no images in"):
        paired_samples(tmp_path)
