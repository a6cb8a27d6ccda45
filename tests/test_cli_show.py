"""`kmix show` writes a real PNG grid and refuses bad input with a clear message."""
from __future__ import annotations

import pytest

from kmix.cli.main import main
from kmix.viz import ShowConfig, show_mix


def test_show_writes_a_png_grid_with_one_row_per_mixer(tmp_path):
    out = show_mix(ShowConfig(mix="all", k=3, num_images=4, out=str(tmp_path / "g.png")))
    from matplotlib.image import imread

    img = imread(out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert img.shape[0] > 300 and img.shape[1] > 300  # 4 rows x 4 columns of panels


def test_show_cli_with_alpha_per_image(tmp_path, capsys):
    out = tmp_path / "sub" / "grid.png"
    assert main(["show", "--mix", "dcutmix", "--k", "5", "--alpha", "0.2", "--num-images", "3", "--out", str(out)]) == 0
    assert out.is_file() and "wrote" in capsys.readouterr().out
    assert main(["show", "--mix", "dmixup", "--k", "3", "--alpha", "0.2,0.5,1", "--num-images", "3",
                 "--out", str(out)]) == 0


@pytest.mark.parametrize("argv, message", [
    (["--k", "1"], "k must be"),
    (["--alpha", "0"], "alpha must be positive"),
    (["--k", "3", "--alpha", "1,1"], "alpha must have k=3 values"),
    (["--num-images", "1"], "num_images must be >= 2"),
    (["--data", "/no/such/folder"], "/no/such/folder"),
])
def test_show_cli_reports_bad_input(tmp_path, capsys, argv, message):
    assert main(["show", "--out", str(tmp_path / "g.png"), *argv]) == 2
    assert message in capsys.readouterr().err
