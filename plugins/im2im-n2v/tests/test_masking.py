"""Blind-spot masking on hand-made tensors: what is masked, what replaces it, what the loss sees."""

from __future__ import annotations

import pytest
import torch
from im2im_n2v.masking import BlindSpotMasking, mask_batch, masked_loss, replaced, stratified_positions

from im2im_core.errors import ConfigError


def unique_values(*shape: int) -> torch.Tensor:
    """Every pixel a different value, so a replacement tells where it came from."""
    return torch.arange(torch.Size(shape).numel(), dtype=torch.float32).reshape(shape)


@pytest.mark.parametrize(("shape", "share"), [((2, 3, 64, 64), 0.002), ((2, 1, 16, 32, 32), 0.01), ((1, 1, 40, 50), 0.05)])
def test_positions_are_one_per_box_at_the_share_asked(shape: tuple[int, ...], share: float) -> None:
    positions = stratified_positions(shape, share, torch.Generator().manual_seed(0))
    dims = len(shape) - 2
    side = round((1 / share) ** (1 / dims))
    boxes = {(int(b), int(c), *(int(p) // side for p in point)) for b, c, *point in positions.tolist()}
    assert len(boxes) == len(positions)  # never two in one box
    pixels = torch.Size(shape).numel()
    assert abs(len(positions) / pixels - share) < share * 0.5
    assert (positions[:, 2:] < torch.tensor(shape[2:])).all() and (positions >= 0).all()
    assert set(positions[:, 1].tolist()) == set(range(shape[1]))  # every channel masked on its own


@pytest.mark.parametrize("dims", [2, 3])
def test_uniform_replacement_is_a_neighbour_in_the_window_never_the_pixel(dims: int) -> None:
    shape = (2, 1, *([12] * dims))
    batch = unique_values(*shape)
    masking = BlindSpotMasking(share=0.05, window=5)
    masked, positions = mask_batch(batch, masking, torch.Generator().manual_seed(1))
    changed = (masked != batch).nonzero()
    assert sorted(map(tuple, changed.tolist())) == sorted(map(tuple, positions.tolist()))  # only masked pixels change
    for position in positions.tolist():
        value = masked[tuple(position)]
        source = (batch == value).nonzero()[0].tolist()
        assert source[:2] == position[:2]                              # same patch and channel
        offset = [s - p for s, p in zip(source[2:], position[2:])]
        assert any(offset) and max(map(abs, offset)) <= 2              # a neighbour within the 5-wide window


def test_median_replacement_leaves_the_centre_out() -> None:
    # 3 x 3 window: neighbours 1..8 around a centre of 1000; without the centre the (lower) median is 4,
    # with it (nine values) it would be 5
    batch = torch.zeros(1, 1, 3, 3)
    batch[0, 0] = torch.tensor([[1.0, 2, 3], [4, 1000, 5], [6, 7, 8]])
    masked = replaced(batch, torch.tensor([[0, 0, 1, 1]]), BlindSpotMasking(share=0.1, window=3, replacement="median"))
    assert masked[0, 0, 1, 1] == 4.0
    assert torch.equal(masked[0, 0].flatten()[[0, 1, 2, 3, 5, 6, 7, 8]], batch[0, 0].flatten()[[0, 1, 2, 3, 5, 6, 7, 8]])


def test_struct_mask_hides_the_line_and_never_takes_the_replacement_from_it() -> None:
    batch = unique_values(1, 1, 15, 15) + 1
    masking = BlindSpotMasking(share=0.1, window=5, struct="line", struct_axis="X", struct_span=2)
    masked = replaced(batch, torch.tensor([[0, 0, 7, 7]]), masking, torch.Generator().manual_seed(0))
    changed = {tuple(p[2:]) for p in (masked != batch).nonzero().tolist()}
    assert changed == {(7, 5), (7, 6), (7, 7), (7, 8), (7, 9)}     # the pixel and two on each side along X
    hidden = {(0, -2), (0, -1), (0, 1), (0, 2)}
    assert not hidden & {tuple(o) for o in masking.candidate_offsets(2).tolist()}
    cross = BlindSpotMasking(share=0.1, window=5, struct="cross", struct_span=1)
    assert {tuple(o) for o in cross.struct_offsets(2).tolist()} == {(0, -1), (0, 1), (-1, 0), (1, 0)}


def test_the_loss_sees_the_masked_pixels_only() -> None:
    original = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    positions = torch.tensor([[0, 0, 1, 2], [1, 0, 5, 5]])
    output = original.clone()
    output[0, 0, 1, 2] += 1.0                            # error 1 at one of two masked pixels
    assert masked_loss(output, original, positions).item() == pytest.approx(0.5)
    output[0, 0, 0, 0] += 100.0                          # an unmasked pixel: no effect
    output[1, 0, 7, 7] -= 100.0
    assert masked_loss(output, original, positions).item() == pytest.approx(0.5)
    assert masked_loss(output, original, positions, "l1").item() == pytest.approx(0.5)


@pytest.mark.parametrize(("arguments", "message"), [
    ({"share": 0.0}, "mask_share 0.0 must be in"), ({"share": 0.6}, "mask_share 0.6 must be in"),
    ({"window": 4}, "window 4 must be an odd number"), ({"replacement": "mean"}, "replacement 'mean'"),
    ({"struct": "line", "struct_span": 0}, "struct_span 0"),
])
def test_values_that_cannot_mask_are_refused_by_name(arguments: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        BlindSpotMasking(**arguments)


def test_patches_smaller_than_the_window_are_refused() -> None:
    with pytest.raises(ConfigError, match="patches of 8x8 pixels are smaller than the masking window 11"):
        mask_batch(torch.rand(1, 1, 8, 8), BlindSpotMasking())


def test_patches_smaller_than_a_box_still_get_one_masked_pixel_each() -> None:
    positions = stratified_positions((4, 2, 12, 12), 0.002, torch.Generator().manual_seed(0))  # boxes of 22 x 22
    assert sorted((b, c) for b, c, *_ in positions.tolist()) == [(b, c) for b in range(4) for c in range(2)]
    assert (positions[:, 2:] < 12).all()


def test_struct_lines_longer_than_the_patch_are_refused() -> None:
    masking = BlindSpotMasking(window=3, struct="line", struct_axis="Z", struct_span=8)
    with pytest.raises(ConfigError, match="smaller than the masking window 3 or than the struct mask"):
        mask_batch(torch.rand(1, 1, 16, 32, 32), masking)
    mask_batch(torch.rand(1, 1, 17, 32, 32), masking)  # 2 x 8 + 1 planes fit


def test_off_axis_replacements_leave_the_pixels_own_row_and_column_out() -> None:
    offsets = BlindSpotMasking(window=5, off_axis=True).candidate_offsets(2)
    assert len(offsets) == 16 and bool(offsets.all())               # the 4 x 4 off-axis pixels of a 5 x 5 window
    batch = unique_values(1, 1, 12, 12)
    masked = replaced(batch, torch.tensor([[0, 0, 6, 6]]), BlindSpotMasking(window=5, off_axis=True),
                      torch.Generator().manual_seed(3))
    source = (batch == masked[0, 0, 6, 6]).nonzero()[0].tolist()
    assert source[2] != 6 and source[3] != 6
