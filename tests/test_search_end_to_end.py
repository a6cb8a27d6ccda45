"""Tiny PC-DARTS search on digits end to end: outputs, warm-up, exact resume, bad input; the found cell trains."""
from __future__ import annotations

import json

import pytest
import torch

from kmix.cli.main import main
from kmix.models import build_model
from kmix.models.darts_genotype import load_genotype
from kmix.runs import RunStopped
from kmix.search import SearchConfig, SearchNetwork, run_search

TINY = dict(data="digits", epochs=2, warmup=1, layers=4, channels=8, limit=160, batch_size=40, seed=3, quiet=True)
TINY_ARGS = ["--epochs", "2", "--warmup", "1", "--layers", "4", "--channels", "8", "--limit", "160",
             "--batch-size", "40", "--seed", "3", "--quiet"]



@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    """One uninterrupted tiny search through the CLI (2 epochs, the first a warm-up)."""
    out = tmp_path_factory.mktemp("search") / "run"
    assert main(["search", "--data", "digits", "--out", str(out), *TINY_ARGS]) == 0
    return out


@pytest.mark.slow
def test_tiny_search_writes_a_valid_genotype_and_summary(searched):
    genotype = load_genotype(searched / "genotype.json")
    assert genotype.steps == 4 and len(genotype.normal) == len(genotype.reduce) == 8
    summary = json.loads((searched / "search.json").read_text())
    assert summary["finished"] and summary["epochs"] == 2
    assert summary["searched_images"] == 160 and summary["train_images"] == summary["arch_images"] == 80
    # warm-up epoch: only the weight half; search epoch: both halves
    assert summary["images_seen_per_epoch"] == [80, 160]
    assert [h["arch_updated"] for h in summary["history"]] == [False, True]
    assert summary["genotype"] == genotype.to_dict()
    soft = torch.tensor(summary["arch"]["alphas_normal_softmax"])
    assert soft.shape == (14, 8) and torch.allclose(soft.sum(1), torch.ones(14), atol=1e-6)
    assert summary["wall_s"] > 0 and len(summary["epoch_wall_s"]) == 2
    assert (searched / "alphas.png").stat().st_size > 0
    assert (searched / "history.csv").read_text().count("\n") == 3


@pytest.mark.slow
def test_interrupted_search_resumes_bit_identically(searched, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(RunStopped):  # stops right after epoch 1's checkpoint, as a kill there would
        run_search(SearchConfig(out=str(out), **TINY), stop_after_epochs=1)
    assert not (out / "genotype.json").exists()
    state = torch.load(out / "checkpoint.pt", weights_only=False)
    assert state["epoch"] == 1
    # the warm-up epoch leaves alphas and betas at their seeded initial values
    torch.manual_seed(TINY["seed"])
    init = SearchNetwork(10, in_chans=1, channels=8, layers=4)
    for name in ("alphas_normal", "alphas_reduce", "betas_normal", "betas_reduce"):
        assert torch.equal(state["model"][name], getattr(init, name).detach())

    with pytest.raises(ValueError, match="already holds a search checkpoint"):
        run_search(SearchConfig(out=str(out), **TINY))
    with pytest.raises(ValueError, match=r"other settings .*channels: 8 -> 4"):
        run_search(SearchConfig(out=str(out), resume=True, **{**TINY, "channels": 4}))

    run_search(SearchConfig(out=str(out), resume=True, **TINY))
    resumed = torch.load(out / "checkpoint.pt", weights_only=False)["model"]
    reference = torch.load(searched / "checkpoint.pt", weights_only=False)["model"]
    assert resumed.keys() == reference.keys()
    assert all(torch.equal(resumed[k], reference[k]) for k in reference)
    assert json.loads((out / "genotype.json").read_text()) == json.loads((searched / "genotype.json").read_text())


@pytest.mark.slow
def test_found_cell_builds_and_takes_a_train_step(searched):
    torch.manual_seed(0)
    net = build_model("darts", num_classes=10, in_chans=1, genotype=str(searched / "genotype.json"),
                      layers=3, channels=8, auxiliary=True, drop_path=0.2)
    x, y = torch.rand(6, 1, 16, 16), torch.arange(6) % 10
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    net.train()
    logits, aux = net(x)
    assert logits.shape == aux.shape == (6, 10)
    loss = torch.nn.functional.cross_entropy(logits, y) + 0.4 * torch.nn.functional.cross_entropy(aux, y)
    loss.backward()
    before = [p.detach().clone() for p in net.parameters()]
    opt.step()
    assert torch.isfinite(loss)
    assert any(not torch.equal(b, p) for b, p in zip(before, net.parameters()))
    net.eval()
    assert net(x).shape == (6, 10)


def test_subset_search_uses_only_the_subset(tmp_path):
    subset = tmp_path / "subset.json"
    subset.write_text(json.dumps({"indices": list(range(0, 640, 10))}))
    out = tmp_path / "run"
    summary = run_search(SearchConfig(out=str(out), subset=str(subset), epochs=1, warmup=0, layers=2, channels=4,
                                      batch_size=64, quiet=True))
    assert summary["searched_images"] == 64
    assert summary["train_images"] == summary["arch_images"] == 32
    assert summary["images_seen_per_epoch"] == [64]
    load_genotype(out / "genotype.json")


def test_bad_input_gives_clear_errors(tmp_path, capsys):
    subset = tmp_path / "subset.json"
    subset.write_text(json.dumps({"indices": [0, 5, 99999]}))
    with pytest.raises(ValueError, match="index 99999 .* out of range"):
        run_search(SearchConfig(out=str(tmp_path / "a"), subset=str(subset), epochs=1, warmup=0, quiet=True))
    assert main(["search", "--out", str(tmp_path / "b"), "--subset", str(subset), "--epochs", "1",
                 "--warmup", "0", "--quiet"]) == 2
    assert "kmix search: error: subset index file" in capsys.readouterr().err
    with pytest.raises(ValueError, match="warmup must be an int in \\[0, epochs=2\\], got 5"):
        run_search(SearchConfig(out=str(tmp_path / "c"), epochs=2, warmup=5))
    with pytest.raises(ValueError, match="channels must be an int >= 2 divisible by partial_k=4, got 10"):
        run_search(SearchConfig(out=str(tmp_path / "c"), channels=10))
    with pytest.raises(FileNotFoundError, match="search checkpoint not found: .*checkpoint.pt"):
        run_search(SearchConfig(out=str(tmp_path / "d"), resume=True))
    with pytest.raises(ValueError, match="needs a genotype"):
        build_model("darts", num_classes=10)
    assert not (tmp_path / "a").exists() and not (tmp_path / "c").exists()


@pytest.mark.slow
def test_kmix_train_trains_the_found_cell(searched, tmp_path):
    """search -> `kmix train --model darts --genotype` -> a checkpoint that load_model rebuilds."""
    pytest.importorskip("kmix.cli.train")
    from kmix.train.checkpoint import load_model

    out = tmp_path / "train"
    argv = ["train", "--data", "digits", "--model", "darts", "--genotype", str(searched / "genotype.json"),
            "--model-arg", "layers=3", "--model-arg", "channels=8", "--auxiliary-weight", "0.4",
            "--drop-path", "0.2", "--epochs", "1", "--limit-train-batches", "2", "--batch-size", "32",
            "--device", "cpu", "--no-tensorboard", "--quiet", "--out", str(out)]
    assert main(argv) == 0
    model, meta = load_model(out / "last.pt")
    assert meta["name"] == "darts" and meta["kwargs"]["genotype"] == json.loads((searched / "genotype.json").read_text())
    assert model(torch.rand(2, 1, 16, 16)).shape == (2, 10)
