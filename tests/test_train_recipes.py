"""Every recipe in recipes/ loads into a valid TrainConfig whose model, mixer and data are known (no training)."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from kmix.mix import MIX_NAMES
from kmix.models import list_models
from kmix.train import load_recipe
from kmix.train.build import build_mixer

RECIPES = sorted((Path(__file__).resolve().parents[1] / "recipes").glob("*.yaml"))


def _model_known(name: str) -> bool:
    if name.startswith("tv:"):
        import torchvision

        return name[3:] in torchvision.models.list_models()
    return name in list_models()


def test_recipes_exist_for_every_issue_row():
    names = {p.stem for p in RECIPES}
    for mix in ("vanilla", "mixup", "cutmix", "dmixup", "dcutmix_paper", "dcutmix_official"):
        assert f"cifar100_pyramidnet110_{mix}" in names
    for mix in ("vanilla", "mixup", "cutmix", "dmixup", "dcutmix"):
        for model in ("preactresnet18", "wrn16_8", "resnext29_4x24d"):
            assert f"cifar100_{model}_{mix}" in names
    for stem in ("cifar100_pyramidnet200_dmixup", "cifar100_pyramidnet200_dcutmix_paper", "cifar10_pyramidnet200_dmixup",
                 "cifar10_pyramidnet200_dcutmix_paper", "cifar100_pyramidnet200_dcutmix_official",
                 "cifar10_pyramidnet200_dcutmix_official", "imagenet_resnet50_mixup", "imagenet_resnet50_cutmix",
                 "imagenet_resnet50_dmixup", "imagenet_resnet50_dcutmix", "imagenet_resnet50_saliency_dcutmix"):
        assert stem in names
    for k in (3, 4, 5, 7, 9):
        assert {f"imagenet_resnet50_dcutmix_k{k}", f"imagenet_resnet50_saliency_dcutmix_k{k}"} <= names
    for model in ("resnet20", "resnet56", "preactresnet18"):  # issue 10's CIFAR-10 comparison
        assert {f"cifar10_{model}_{mix}" for mix in ("vanilla", "mixup", "cutmix", "dmixup", "dcutmix")} <= names


@pytest.mark.parametrize("path", RECIPES, ids=[p.stem for p in RECIPES])
def test_recipe_is_valid(path):
    text = path.read_text()
    assert text.startswith("#"), "each recipe states its source in a leading comment"
    cfg = load_recipe(path)
    assert _model_known(cfg.model), cfg.model
    assert cfg.mix in MIX_NAMES
    assert cfg.data in ("digits", "cifar10", "cifar100") or "/" in cfg.data
    if cfg.mix != "none":
        mixer = build_mixer(cfg, 100, torch.Generator())
        assert mixer.k == cfg.k and mixer.p == cfg.p
    if cfg.schedule == "step":
        assert all(m < cfg.epochs for m in cfg.milestones)


@pytest.mark.parametrize("stem, expect", [
    ("cifar100_pyramidnet110_dcutmix_paper", dict(mix="dcutmix", k=5, alpha=0.2, epochs=300, batch_size=64, lr=0.25,
                                                  milestones=[150, 225], weight_decay=1e-4, partners="derangement",
                                                  keep_last_batch=False, norm_mean=None)),
    ("cifar100_pyramidnet110_dmixup", dict(mix="dmixup", k=3, alpha=1 / 3)),
    ("cifar100_pyramidnet200_dcutmix_paper", dict(model="pyramidnet200", k=5, alpha=1.0, p=0.5)),
    ("cifar10_pyramidnet200_dcutmix_paper", dict(data="cifar10", k=3, alpha=1 / 3)),
    ("cifar100_wrn16_8_cutmix", dict(model="wrn16_8", mix="cutmix", k=2, alpha=1.0, p=0.5)),
    ("cifar10_resnet20_vanilla", dict(data="cifar10", model="resnet20", mix="none", epochs=164, batch_size=128,
                                      lr=0.1, milestones=[82, 123], weight_decay=1e-4, nesterov=False)),
    ("cifar10_resnet56_mixup", dict(model="resnet56", mix="mixup", k=2, alpha=1.0, p=1.0)),
    ("cifar10_resnet56_cutmix", dict(mix="cutmix", k=2, alpha=1.0, p=0.5)),
    ("cifar10_resnet20_dmixup", dict(mix="dmixup", k=5, alpha=0.2, p=1.0)),
    ("cifar10_preactresnet18_dcutmix", dict(model="preact_resnet18", mix="dcutmix", k=3, alpha=1 / 3, p=1.0,
                                            epochs=200, milestones=[100, 150], batch_size=128, lr=0.1)),
    ("imagenet_resnet50_saliency_dcutmix_k9", dict(model="tv:resnet50", mix="saliency-dcutmix", k=9, batch_size=256,
                                                   lr=0.1, milestones=[75, 150, 225], p=1.0)),
])
def test_recipe_values_match_the_paper_rows(stem, expect):
    """Spot checks of the issue's K/alpha and the CutMix paper's schedule."""
    cfg = load_recipe(next(p for p in RECIPES if p.stem == stem))
    for key, value in expect.items():
        assert getattr(cfg, key) == pytest.approx(value), key


def test_quickstart_recipe_is_the_default_config():
    from kmix.train import TrainConfig

    assert load_recipe(next(p for p in RECIPES if p.stem == "digits_quickstart")) == TrainConfig()


# the official DCutMix README's three commands (clovaai/DCutMix): K (--trial), alpha, p (--beta) per command
OFFICIAL_COMMANDS = {
    "cifar100_pyramidnet110_dcutmix_official": ("cifar100", "pyramidnet110", 5, 0.2, 1.0),
    "cifar100_pyramidnet200_dcutmix_official": ("cifar100", "pyramidnet200", 5, 1.0, 0.5),
    "cifar10_pyramidnet200_dcutmix_official": ("cifar10", "pyramidnet200", 3, 0.33333333333, 1.0),
}


def test_every_official_recipe_has_the_official_codes_settings():
    official = sorted(p for p in RECIPES if p.stem.endswith("_official"))
    assert {p.stem for p in official} == set(OFFICIAL_COMMANDS)
    for path in official:
        cfg = load_recipe(path)
        data, model, k, alpha, p = OFFICIAL_COMMANDS[path.stem]
        assert (cfg.data, cfg.model, cfg.mix, cfg.k, cfg.p) == (data, model, "dcutmix", k, p), path.stem
        assert cfg.alpha == pytest.approx(alpha, abs=1e-9)
        # main.py: SGD(lr=args.lr, momentum=0.9, weight_decay=args.wd, nesterov=True), README --lr 0.25 --wd 4e-5
        assert (cfg.lr, cfg.batch_size, cfg.momentum, cfg.nesterov, cfg.weight_decay) == (0.25, 64, 0.9, True, 4e-5)
        # MultiStepLR milestones [int(epoch * 0.75), int(epoch * 0.90)] of the default 300 epochs, gamma 0.1
        assert (cfg.epochs, cfg.schedule, cfg.milestones, cfg.gamma) == (300, "step", [225, 270], 0.1)
        # transforms.Normalize((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)) for both datasets
        assert cfg.norm_mean == [0.4914, 0.4822, 0.4465] and cfg.norm_std == [0.2023, 0.1994, 0.2010]
        # DataLoader(shuffle=True) keeps the last partial batch: 782 steps of 50,000 images at batch 64
        assert cfg.keep_last_batch is True and -(-50_000 // cfg.batch_size) == 782
        # partners: torch.randperm per slot, from the step's own batch; phi drawn per sample
        assert cfg.partners == "permutation" and cfg.prepare_steps == 1 and cfg.augment
        mixer = build_mixer(cfg, 100, torch.Generator())
        assert mixer.partners == "permutation" and mixer.k == k
