"""Anchored-mixing uncertainty scores: brute-force losses, anchor mass, determinism, sharding, resume, errors."""
from __future__ import annotations

import csv
import math

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import TensorDataset

from kmix.cli.main import main
from kmix.runs import RunStopped
from kmix.select import ScoreSpec, default_anchor_phi, read_scores, score_losses, summarize_losses
from kmix.select.score import chunk_params

N, C, H, W = 13, 13, 8, 8  # every image its own class: label mass of a class = mass of that image


def tiny_dataset(n=N, classes=C):
    g = torch.Generator().manual_seed(1)
    ds = TensorDataset(torch.rand(n, 1, H, W, generator=g), torch.arange(n) % classes)
    ds.targets = (torch.arange(n) % classes).tolist()
    return ds


def tiny_model(classes=C):
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(H * W, 16), nn.Tanh(), nn.Linear(16, classes)).eval()


def brute_composite(images, index_row, boxes_row):
    """Composite built pixel by pixel: a pixel belongs to the deepest nested box containing it."""
    out = torch.empty(images.shape[1:])
    slot_count = torch.zeros(index_row.numel())
    for y in range(H):
        for x in range(W):
            slot = 0
            for j, (y0, x0, y1, x1) in enumerate(boxes_row.tolist()):
                if y0 <= y < y1 and x0 <= x < x1:
                    slot = j + 1
            out[:, y, x] = images[index_row[slot], :, y, x]
            slot_count[slot] += 1
    return out, slot_count / (H * W)


def test_default_anchor_phi_is_marginal_beta_mean():
    assert default_anchor_phi((2 / 9, 2 / 9)) == pytest.approx(1 / 3)
    assert default_anchor_phi((0.5, 0.5, 0.5)) == pytest.approx(0.25)
    assert ScoreSpec().anchor_phi == pytest.approx(1 / 3)


def test_losses_and_stats_match_brute_force():
    ds, model = tiny_dataset(), tiny_model()
    spec = ScoreSpec(draws=4, k=3, seed=3, chunk_size=5)
    losses = score_losses(model, ds, C, spec, batch_size=7)
    assert losses.shape == (N, 4)
    images = ds.tensors[0]
    for chunk in range(math.ceil(N / 5)):
        params = chunk_params(spec, chunk, N, H, W)
        for row in range(params.index.shape[0]):
            anchor = chunk * 5 + row // 4
            x, frac = brute_composite(images, params.index[row], params.boxes[row])
            target = torch.zeros(C)
            for j, src in enumerate(params.index[row].tolist()):
                target[ds.targets[src]] += frac[j]
            expected = -(target * F.log_softmax(model(x[None])[0], -1)).sum()
            assert losses[anchor, row % 4].item() == pytest.approx(expected.item(), abs=1e-5)
    stats = summarize_losses(losses)
    ref = losses.double().numpy()
    np.testing.assert_allclose(stats["mean"].numpy(), ref.mean(1), rtol=1e-12)
    np.testing.assert_allclose(stats["std"].numpy(), ref.std(1, ddof=0), rtol=1e-10)
    np.testing.assert_allclose(stats["cv"].numpy(), ref.std(1, ddof=0) / ref.mean(1), rtol=1e-10)


@pytest.mark.parametrize("phi", [None, 0.5, 0.1])
def test_anchor_mass_is_pixel_fraction_and_fixed(phi):
    from kmix.mix import apply_cutmix, mix_labels

    spec = ScoreSpec(draws=6, k=3, seed=0, chunk_size=N, anchor_phi=phi)
    hh, ww = 16, 16
    params = chunk_params(spec, 0, 40, hh, ww)
    index = params.index
    assert torch.equal(index[:, 0], torch.arange(N).repeat_interleave(6))
    assert bool((index[:, 1:] != index[:, :1]).all()), "a partner equal to its anchor"
    pool = torch.arange(40, dtype=torch.float32).view(40, 1, 1, 1).expand(40, 1, hh, ww).contiguous()
    mixed, weights = apply_cutmix(pool, index, params.boxes)
    pixel_frac = (mixed == index[:, :1, None, None].float()).float().mean((1, 2, 3))
    onehot = torch.eye(40)
    anchor_mass = mix_labels(onehot, index, weights).gather(1, index[:, :1])[:, 0]
    torch.testing.assert_close(anchor_mass, pixel_frac)
    side_h = round(hh * math.sqrt(1 - spec.anchor_phi))
    side_w = round(ww * math.sqrt(1 - spec.anchor_phi))
    fixed = 1 - side_h * side_w / (hh * ww)
    torch.testing.assert_close(pixel_frac, torch.full_like(pixel_frac, fixed))  # identical in every draw
    rounding = (2 * max(hh, ww) + 1) / (hh * ww)  # one row and one column of rounding
    assert abs(fixed - spec.anchor_phi) <= rounding


def test_partners_come_from_whole_dataset():
    spec = ScoreSpec(draws=50, k=3, seed=0, chunk_size=4)
    params = chunk_params(spec, 0, 100, 8, 8)
    partners = params.index[:, 1:]
    assert int(partners.max()) >= 50 and int(partners.min()) >= 0 and int(partners.max()) < 100
    assert partners.unique().numel() > 60


def test_deterministic_for_seed_not_batch_size():
    ds, model = tiny_dataset(), tiny_model()
    spec = ScoreSpec(draws=3, seed=7, chunk_size=4)
    a = score_losses(model, ds, C, spec, batch_size=5)
    b = score_losses(model, ds, C, spec, batch_size=64)
    c = score_losses(model, ds, C, ScoreSpec(draws=3, seed=8, chunk_size=4), batch_size=5)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    assert not torch.allclose(a, c)


def test_sharded_ranks_assemble_the_unsharded_result(tmp_path):
    ds, model = tiny_dataset(), tiny_model()
    spec = ScoreSpec(draws=3, seed=1, chunk_size=3)
    full = score_losses(model, ds, C, spec)
    chunks = tmp_path / "chunks"
    assert score_losses(model, ds, C, spec, chunk_dir=chunks, rank=1, world_size=3) is None
    assert score_losses(model, ds, C, spec, chunk_dir=chunks, rank=0, world_size=3) is None  # rank 2 missing
    assert score_losses(model, ds, C, spec, chunk_dir=chunks, rank=2, world_size=3) is None
    merged = score_losses(model, ds, C, spec, chunk_dir=chunks, rank=0, world_size=3)
    torch.testing.assert_close(merged, full, rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="chunk_dir"):
        score_losses(model, ds, C, spec, rank=0, world_size=2)


def test_resume_reuses_finished_chunks(tmp_path):
    ds, model = tiny_dataset(), tiny_model()
    spec = ScoreSpec(draws=3, seed=2, chunk_size=4)
    full = score_losses(model, ds, C, spec)
    n = full.shape[0]
    with pytest.raises(RunStopped, match="after 2 chunk"):
        score_losses(model, ds, C, spec, chunk_dir=tmp_path / "c", stop_after_chunks=2)
    assert sorted(p.name for p in (tmp_path / "c").glob("chunk_*.pt")) == ["chunk_000000.pt", "chunk_000001.pt"]
    counters: dict = {}
    resumed = score_losses(model, ds, C, spec, chunk_dir=tmp_path / "c", counters=counters)
    assert counters["scored"] == (n - 8) * 3  # chunks 0 and 1 (8 anchors) were reused, not scored again
    torch.testing.assert_close(resumed, full, rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="other settings"):
        score_losses(model, ds, C, ScoreSpec(draws=3, seed=9, chunk_size=4), chunk_dir=tmp_path / "c")


def test_bad_spec_and_labels():
    with pytest.raises(ValueError, match="alpha must have k-1=2"):
        ScoreSpec(k=3, alpha=(0.2,))
    with pytest.raises(ValueError, match="anchor_phi"):
        ScoreSpec(anchor_phi=1.5)
    with pytest.raises(ValueError, match="draws"):
        ScoreSpec(draws=1)
    with pytest.raises(ValueError, match="num_classes=5"):
        score_losses(tiny_model(5), tiny_dataset(), 5, ScoreSpec(draws=2))


def _save_digits_checkpoint(path):
    from kmix.data.digits import DIGITS_INFO
    from kmix.models import build_model
    from kmix.train.checkpoint import model_meta, save_checkpoint

    torch.manual_seed(0)
    net = build_model("small_cnn", num_classes=10, in_chans=1, width=8)
    save_checkpoint(path, {"model": net.state_dict(), "model_meta": model_meta("small_cnn", DIGITS_INFO, width=8)})


def test_cli_score_writes_readable_file(tmp_path, capsys):
    ckpt, out = tmp_path / "m.pt", tmp_path / "scores.csv"
    _save_digits_checkpoint(ckpt)
    (tmp_path / "scores.csv.a1b2c3d4.tmp").write_text("half a CSV")  # a write killed mid-way, earlier
    (tmp_path / "other.csv.a1b2c3d4.tmp").write_text("another command's")
    rc = main(["score", "--checkpoint", str(ckpt), "--draws", "2", "--chunk-size", "500", "--out", str(out),
               "--quiet"])
    assert rc == 0
    assert sorted(p.name for p in tmp_path.glob("*.tmp")) == ["other.csv.a1b2c3d4.tmp"]
    with open(out) as f:
        header = next(csv.reader(f))
    assert header == ["index", "label", "mean", "std", "cv", "loss_0", "loss_1"]
    table = read_scores(out)
    assert len(table) == 1437 and table.meta["draws"] == 2 and table.meta["std_ddof"] == 0
    losses = np.stack([table.column("loss_0"), table.column("loss_1")], 1)
    np.testing.assert_allclose(table.column("cv"), losses.std(1) / losses.mean(1), rtol=1e-9)
    assert not (tmp_path / "scores.csv.chunks").exists()
    assert main(["score", "--checkpoint", str(tmp_path / "nope.pt"), "--out", str(out)]) == 2
    assert "checkpoint not found" in capsys.readouterr().err


def test_chunks_of_a_replaced_checkpoint_are_refused(tmp_path):
    """P5: chunks are matched to the checkpoint's content, not its path."""
    from kmix.select.score import ScoreConfig, run_score

    ckpt, out = tmp_path / "m.pt", tmp_path / "scores.csv"
    _save_digits_checkpoint(ckpt)
    cfg = ScoreConfig(checkpoint=str(ckpt), out=str(out), spec=ScoreSpec(draws=2, chunk_size=500), quiet=True,
                      rank=1, world_size=2)
    assert run_score(cfg)["complete"] is False  # rank 1's chunk saved: as a run stopped half-way
    state = torch.load(ckpt, weights_only=False)
    state["model"] = {k: v + 1 for k, v in state["model"].items()}
    torch.save(state, ckpt)  # another model at the same path
    with pytest.raises(ValueError, match=r"scores.csv.chunks holds a set of chunks with other settings "
                                         r"\(checkpoint_sha256: '[0-9a-f]{64}' -> '[0-9a-f]{64}'\)"):
        run_score(cfg)


def test_read_scores_rejects_bad_files(tmp_path):
    def write(text):
        p = tmp_path / "s.csv"
        p.write_text(text)
        return p

    with pytest.raises(FileNotFoundError, match="scores file not found"):
        read_scores(tmp_path / "missing.csv")
    with pytest.raises(ValueError, match="lacks column"):
        read_scores(write("index,label,mean,std\n0,1,0.5,0.1\n"))
    with pytest.raises(ValueError, match=r"4 index\(es\) missing \(1, 2, 3, 4\): 2 rows hold indices up to 5"):
        read_scores(write("index,label,mean,std,cv\n0,1,0.5,0.1,0.2\n5,1,0.5,0.1,0.2\n"))
    with pytest.raises(ValueError, match="duplicate"):
        read_scores(write("index,label,mean,std,cv\n0,1,0.5,0.1,0.2\n0,1,0.5,0.1,0.2\n"))
    with pytest.raises(ValueError, match="not numeric"):
        read_scores(write("index,label,mean,std,cv\n0,1,abc,0.1,0.2\n"))


def test_parquet_round_trip(tmp_path):
    pytest.importorskip("pyarrow")
    from kmix.select import write_scores

    losses = torch.rand(6, 3)
    labels = torch.tensor([0, 1, 0, 1, 2, 2])
    written = write_scores(tmp_path / "s.csv", labels, losses, summarize_losses(losses), {"draws": 3})
    assert [p.suffix for p in written] == [".csv", ".parquet"]
    a, b = read_scores(written[0]), read_scores(written[1])
    np.testing.assert_array_equal(a.label, b.label)
    np.testing.assert_allclose(a.column("cv"), b.column("cv"))


@pytest.mark.parametrize("cache_bytes", [0, 1 << 30])
def test_image_bank_lazy_and_cached_paths(cache_bytes):
    from torch.utils.data import Dataset

    from kmix.select.bank import ImageBank

    images = torch.rand(9, 2, 4, 4)

    class Plain(Dataset):
        targets = list(range(9))

        def __len__(self):
            return 9

        def __getitem__(self, i):
            return images[i], i

    bank = ImageBank(Plain(), cache_bytes=cache_bytes)
    assert (bank.images is None) == (cache_bytes == 0)
    index = torch.tensor([[3, 7, 7], [0, 8, 3]])
    pool, local = bank.pool_for(index)
    torch.testing.assert_close(pool[local], images[index])
