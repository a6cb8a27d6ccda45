"""The DARTS evaluation network: size of the published DARTS cell, aux head, drop-path, small inputs."""
from __future__ import annotations

import pytest
import torch

from kmix.models import build_model, list_models
from kmix.models.darts import DartsNetwork

# The DARTS (second order) cell as drawn in Liu et al. 2019, Fig. 4/5.
DARTS_V2 = {
    "normal": [["sep_conv_3x3", 0], ["sep_conv_3x3", 1], ["sep_conv_3x3", 0], ["sep_conv_3x3", 1],
               ["sep_conv_3x3", 1], ["skip_connect", 0], ["skip_connect", 0], ["dil_conv_3x3", 2]],
    "normal_concat": [2, 3, 4, 5],
    "reduce": [["max_pool_3x3", 0], ["max_pool_3x3", 1], ["skip_connect", 2], ["max_pool_3x3", 1],
               ["max_pool_3x3", 0], ["skip_connect", 2], ["skip_connect", 2], ["max_pool_3x3", 1]],
    "reduce_concat": [2, 3, 4, 5],
}



def _count(net: torch.nn.Module) -> int:
    return sum(p.numel() for name, p in net.named_parameters() if "aux_head" not in name)


def test_published_sizes_of_the_darts_cell():
    """DARTS reports 3.3M parameters on CIFAR-10 (20 cells, C=36) and 4.7M on ImageNet (14 cells, C=48)."""
    assert "darts" in list_models()
    cifar = build_model("darts", num_classes=10, in_chans=3, genotype=DARTS_V2)
    assert _count(cifar) == 3_349_342
    imagenet = build_model("darts", num_classes=1000, in_chans=3, genotype=DARTS_V2, layers=14, channels=48,
                           stem="imagenet")
    assert _count(imagenet) == 4_718_752
    assert [i for i, c in enumerate(cifar.cells) if c.reduction] == [6, 13]


@pytest.mark.parametrize("size, in_chans", [(16, 1), (32, 3), (15, 1)])
def test_train_mode_returns_aux_logits_eval_mode_does_not(size, in_chans):
    torch.manual_seed(0)
    net = DartsNetwork(DARTS_V2, num_classes=7, in_chans=in_chans, layers=5, channels=8)
    x = torch.rand(3, in_chans, size, size)
    logits, aux = net.train()(x)
    assert logits.shape == aux.shape == (3, 7)
    assert net.eval()(x).shape == (3, 7)
    plain = DartsNetwork(DARTS_V2, num_classes=7, in_chans=in_chans, layers=5, channels=8, auxiliary=False)
    assert plain.train()(x).shape == (3, 7)


def test_drop_path_only_in_training_and_only_when_set():
    torch.manual_seed(0)
    net = DartsNetwork(DARTS_V2, num_classes=10, in_chans=1, layers=3, channels=8, auxiliary=False, drop_path=0.0)
    x = torch.rand(8, 1, 16, 16)
    net.train()
    assert torch.equal(net(x), net(x))  # no randomness without drop-path
    net.drop_path_prob = 0.5
    assert not torch.equal(net(x), net(x))
    net.eval()
    assert torch.equal(net(x), net(x))


def test_bad_arguments():
    with pytest.raises(ValueError, match="drop_path must be in"):
        DartsNetwork(DARTS_V2, num_classes=10, drop_path=1.0)
    with pytest.raises(ValueError, match="stem must be"):
        DartsNetwork(DARTS_V2, num_classes=10, stem="mobile")
    with pytest.raises(ValueError, match=r"genotype: normal\[0\]: unknown op"):
        DartsNetwork({**DARTS_V2, "normal": [["conv", 0]] + DARTS_V2["normal"][1:]}, num_classes=10)


@pytest.mark.parametrize("recipe", ["darts_eval_cifar100.yaml", "darts_eval_cifar100_dcutmix.yaml"])
def test_darts_recipes_build_the_cifar_evaluation_net(recipe):
    from pathlib import Path

    from kmix.train import load_recipe

    path = Path(__file__).resolve().parents[1] / "recipes" / recipe
    cfg = load_recipe(path)
    assert (cfg.model, cfg.epochs, cfg.lr, cfg.weight_decay, cfg.auxiliary_weight, cfg.drop_path) == \
        ("darts", 600, 0.025, 3e-4, 0.4, 0.3)
    net = build_model(cfg.model, num_classes=100, in_chans=3, genotype=DARTS_V2, **cfg.model_kwargs)
    assert len(net.cells) == 20 and net.aux_head is not None
    assert _count(net) == 3_349_342 + 90 * (net.classifier.in_features + 1)  # 100 instead of 10 classes
