"""`kmix show` writes a real PNG grid and refuses bad input with a clear message."""
from __future__ import annotations

import numpy as np
import pytest

from kmix.cli.main import main
from kmix.viz import ShowConfig, show_mix


def test_show_writes_a_png_grid_with_one_row_per_mixer(tmp_path):
    """mix="all": a row of the seed's training images, then one row per K-image mixer in MIXERS order, read
    back from the PNG's pixels: DMixup blends the originals, DCutMix and Saliency-DCutMix paste their pixels."""
    import torch

    from kmix.data.registry import build_dataset
    from kmix.mix import MIXERS
    from kmix.runs import Stream, generator_for

    out = show_mix(ShowConfig(mix="all", k=3, num_images=4, out=str(tmp_path / "g.png")))
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    grid = _panels(out, 16)
    assert list(MIXERS) == ["dmixup", "dcutmix", "saliency-dcutmix"]
    assert grid.shape == (4, 4, 16, 16)  # originals + one row per mixer, 4 columns
    original, blend, cut, saliency = grid
    dataset, _ = build_dataset("digits", train=True, augment=False)
    picks = torch.randperm(len(dataset), generator=generator_for(Stream.SHOW_IMAGES, 0))[:4].tolist()
    shown = np.stack([dataset[i][0][0].numpy() for i in picks])
    assert np.abs(original - shown).max() <= 1 / 255 + 1e-6  # the seed's images, up to PNG rounding
    for row in (blend, cut, saliency):
        assert all(not np.array_equal(o, m) for o, m in zip(original, row)), "a panel was left unmixed"
    assert (blend >= original.min(0) - 1 / 255).all() and (blend <= original.max(0) + 1 / 255).all()
    assert not np.isclose(blend[:, None], original[None]).any(1).all()  # a blend, not a cut-and-paste
    for row in (cut, saliency):
        assert np.isclose(row[:, None], original[None]).any(1).all()  # every pixel from a shown original


def _panels(png, size: int) -> np.ndarray:
    """The images shown in a grid PNG, read back from its pixels: (rows, columns, size, size) grey levels.

    Panels are the large non-white regions; each shows a size x size image drawn with nearest
    interpolation, so the centre of each of its cells is that pixel's grey (boxes lie on cell edges)."""
    from matplotlib.image import imread
    from scipy import ndimage

    rgb = imread(png)[..., :3]
    regions = ndimage.find_objects(ndimage.label((rgb < 0.95).any(-1))[0])
    boxes = sorted((r.start, r.stop, c.start, c.stop) for r, c in regions
                   if r.stop - r.start > 50 and c.stop - c.start > 50)
    tops, lefts = sorted({b[0] for b in boxes}), sorted({b[2] for b in boxes})
    assert len(boxes) == len(tops) * len(lefts), boxes  # a full grid
    centres = (np.arange(size) + 0.5) / size
    cells = np.stack([rgb[(r0 + centres * (r1 - r0)).astype(int)][:, (c0 + centres * (c1 - c0)).astype(int)]
                      for r0, r1, c0, c1 in boxes])
    assert np.allclose(cells[..., 0], cells[..., 1]) and np.allclose(cells[..., 0], cells[..., 2])  # grey
    return cells[..., 0].reshape(len(tops), len(lefts), size, size)


def test_show_cli_with_alpha_per_image(tmp_path, capsys):
    out = tmp_path / "sub" / "grid.png"
    assert main(["show", "--mix", "dcutmix", "--k", "5", "--alpha", "0.2", "--num-images", "3", "--out", str(out)]) == 0
    assert capsys.readouterr().out == f"wrote {out}\n"
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and sorted(p.name for p in out.parent.iterdir()) == ["grid.png"]
    cut = _panels(out, 16)  # digits are 16 x 16
    assert cut.shape == (2, 3, 16, 16)  # a row of 3 originals, a row of their mixes
    original, mixed = cut
    assert all(not np.array_equal(o, m) for o, m in zip(original, mixed)), "a panel was left unmixed"
    # DCutMix pastes pixels: each mixed pixel is the same pixel of one of the shown originals
    assert np.isclose(mixed[:, None], original[None]).any(1).all()

    assert main(["show", "--mix", "dmixup", "--k", "3", "--alpha", "0.2,0.5,1", "--num-images", "3",
                 "--out", str(out)]) == 0
    blend = _panels(out, 16)
    assert np.array_equal(blend[0], original)  # same seed: same originals
    original, mixed = blend
    assert all(not np.array_equal(o, m) for o, m in zip(original, mixed)), "a panel was left unmixed"
    # DMixup blends: each mixed pixel lies between the originals' values there (1/255 for PNG rounding)
    assert (mixed >= original.min(0) - 1 / 255).all() and (mixed <= original.max(0) + 1 / 255).all()
    assert not np.isclose(mixed[:, None], original[None]).any(1).all()  # not a cut-and-paste


def test_show_the_fields_cutmix_pastes_pixels(tmp_path):
    out = tmp_path / "cutmix.png"
    assert main(["show", "--mix", "cutmix", "--alpha", "1", "--num-images", "4", "--seed", "2", "--out", str(out)]) == 0
    original, mixed = _panels(out, 16)
    assert np.isclose(mixed[:, None], original[None]).any(1).all()  # every pixel comes from a shown original
    assert any(not np.array_equal(o, m) for o, m in zip(original, mixed))


@pytest.mark.parametrize("argv, message", [
    (["--mix", "cutmix", "--k", "3", "--alpha", "1,1,1"], "alpha must be one value for cutmix"),
    (["--k", "1"], "k must be"),
    (["--alpha", "0"], "alpha must be positive"),
    (["--k", "3", "--alpha", "1,1"], "alpha must have k=3 values"),
    (["--num-images", "1"], "num_images must be >= 2"),
    (["--data", "/no/such/folder"], "/no/such/folder"),
])
def test_show_cli_reports_bad_input(tmp_path, capsys, argv, message):
    assert main(["show", "--out", str(tmp_path / "g.png"), *argv]) == 2
    assert message in capsys.readouterr().err
