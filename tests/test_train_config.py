"""Unit tests of the training pieces: config/recipes, LR schedule, data order, seeded items, loss, mixers."""
from __future__ import annotations

import math
import random

import pytest
import torch

from kmix.mix import CutMix, DCutMix, DMixup, Mixup, SaliencyDCutMix, SoftTargetCrossEntropy
from kmix.train import TrainConfig, load_recipe
from kmix.train.build import build_mixer, compute_loss
from kmix.train.config import default_values, upgrade_run_config
from kmix.runs import derive_seed
from kmix.train.sampling import EpochBatchSampler, SeededItems, epoch_permutation
from kmix.train.schedule import LRMultiplier
from kmix.runs import rng_state, set_rng_state


# --- config and recipes --------------------------------------------------------------------------
def test_recipe_fills_config_and_overrides_win(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("data: digits\nmix: dmixup\nk: 4\nalpha: 0.2\nbatch-size: 32\nmilestones: [3, 1]\n"
                    "schedule: step\nmodel_kwargs: {width: 8}\n")
    cfg = load_recipe(path, k=5, lr=0.05)
    assert (cfg.mix, cfg.k, cfg.alpha, cfg.batch_size, cfg.lr) == ("dmixup", 5, 0.2, 32, 0.05)
    assert cfg.milestones == [1, 3] and cfg.model_kwargs == {"width": 8}
    assert cfg.epochs == default_values()["epochs"]


def test_recipe_unknown_keys_are_named(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("mix: dcutmix\nlearning_rate: 0.1\nepoch: 3\n")
    with pytest.raises(ValueError, match="unknown key.*epoch, learning_rate"):
        load_recipe(path)
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        load_recipe(tmp_path / "nope.yaml")
    (tmp_path / "bad.yaml").write_text("mix: [unclosed\n")
    with pytest.raises(ValueError, match="not valid YAML"):
        load_recipe(tmp_path / "bad.yaml")


@pytest.mark.parametrize("change, match", [
    (dict(mix="cutmixx"), "unknown mix 'cutmixx'"),
    (dict(k=1), "k must be >= 2"),
    (dict(alpha=0.0), "alpha must be > 0"),
    (dict(p=1.5), "p must be in"),
    (dict(schedule="step"), "needs milestones"),
    (dict(schedule="step", milestones=[5, 15], epochs=15), r"\[15\] would never lower the lr"),
    (dict(amp="fp8"), "unknown amp"),
    (dict(device="tpu"), "device must be"),
    (dict(batch_size=1), "batch_size must be >= 2"),
    (dict(epochs=0), "epochs must be >= 1"),
    (dict(lr=float("nan")), "lr must be a finite number"),
    (dict(k=2.5), "k must be an integer"),
    (dict(warmup_epochs=20, epochs=10), "warmup_epochs"),
])
def test_bad_config_values_are_named(change, match):
    with pytest.raises((ValueError, TypeError), match=match):
        TrainConfig(**change)


def test_mixup_and_cutmix_are_k2():
    assert TrainConfig(mix="mixup", k=5).k == 2
    assert TrainConfig(mix="cutmix").k == 2
    assert TrainConfig(mix="dcutmix", k=5).k == 5


def test_build_mixer_mapping():
    gen = torch.Generator()
    cases = {"mixup": (Mixup, 2), "cutmix": (CutMix, 2), "dmixup": (DMixup, 4), "dcutmix": (DCutMix, 4),
             "saliency-dcutmix": (SaliencyDCutMix, 4)}
    for mix, (cls, k) in cases.items():
        m = build_mixer(TrainConfig(mix=mix, k=4, alpha=0.5, p=0.7), 10, gen)
        assert type(m) is cls and m.k == k and m.p == 0.7 and m.generator is gen
        assert torch.allclose(m.alpha, torch.full((k,), 0.5, dtype=torch.float64))
    assert build_mixer(TrainConfig(mix="none"), 10, gen) is None
    assert build_mixer(TrainConfig(mix="cutmix", mix_mode="elem"), 10, gen).mode == "elem"
    assert build_mixer(TrainConfig(mix="dcutmix", partners="permutation"), 10, gen).partners == "permutation"


@pytest.mark.parametrize("change, message", [
    ({"mix": "cutmix", "mix_mode": "pair"}, "unknown mix_mode 'pair'"),
    ({"mix": "dcutmix", "mix_mode": "elem"}, "mix_mode 'elem' applies to mixup and cutmix only"),
    ({"mix": "cutmix", "partners": "permutation"}, "partners 'permutation' applies to dmixup"),
    ({"mix": "dcutmix", "partners": "any"}, "unknown partners 'any'"),
    ({"mix_version": 1}, "mix_version must be 2"),
])
def test_mixing_options_refused_where_they_do_not_apply(change, message):
    with pytest.raises(ValueError) as err:
        TrainConfig(**change)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_version_1_run_records_name_the_papers_k2_mixers():
    # records written before the field's Mixup/CutMix (no mix_version) meant DMixup/DCutMix with K=2
    assert upgrade_run_config({"mix": "cutmix", "k": 2, "p": 0.5})["mix"] == "dcutmix"
    old = upgrade_run_config({"mix": "mixup", "k": 2})
    assert (old["mix"], old["k"], old["mix_version"], old["partners"]) == ("dmixup", 2, 2, "derangement")
    assert upgrade_run_config({"mix": "dcutmix", "k": 3})["mix"] == "dcutmix"
    new = TrainConfig(mix="cutmix").to_dict()  # today's records say their version and are read as written
    assert upgrade_run_config(new) == new


# --- schedule ------------------------------------------------------------------------------------
def test_step_schedule_changes_exactly_at_milestones():
    f = LRMultiplier("step", epochs=10, steps_per_epoch=4, milestones=[3, 6], gamma=0.1)
    values = [f(t) for t in range(40)]
    assert values[:12] == [1.0] * 12
    assert all(math.isclose(v, 0.1) for v in values[12:24])
    assert all(math.isclose(v, 0.01) for v in values[24:])


def test_cosine_and_warmup():
    f = LRMultiplier("cosine", epochs=10, steps_per_epoch=10, warmup_epochs=2)
    assert [round(f(t), 6) for t in (0, 9, 19)] == [0.05, 0.5, 1.0]  # linear warmup to 1
    assert f(20) == pytest.approx(1.0) and f(60) == pytest.approx(0.5) and f(100) == pytest.approx(0.0, abs=1e-12)
    assert all(f(t) >= f(t + 1) for t in range(20, 100))
    assert LRMultiplier("constant", epochs=3, steps_per_epoch=2)(5) == 1.0


# --- data order ----------------------------------------------------------------------------------
def test_epoch_permutation_is_a_function_of_seed_and_epoch():
    a, b = epoch_permutation(100, 0, 3), epoch_permutation(100, 0, 3)
    assert torch.equal(a, b) and sorted(a.tolist()) == list(range(100))
    assert not torch.equal(a, epoch_permutation(100, 0, 4)) and not torch.equal(a, epoch_permutation(100, 1, 3))
    assert derive_seed(1, 2) != derive_seed(2, 1)


def test_sampler_ranks_partition_the_single_process_batches_and_resume_skips():
    single = list(EpochBatchSampler(103, 8, seed=5, epoch=2))
    assert len(single) == 12 and all(len(b) == 8 for b in single)
    flat = [i for b in single for _, i in b]
    assert len(set(flat)) == 96 and all(e == 2 for b in single for e, _ in b)
    ranks = [list(EpochBatchSampler(103, 8, seed=5, epoch=2, rank=r, world=2)) for r in range(2)]
    for step, batch in enumerate(single):
        assert ranks[0][step] + ranks[1][step] == batch
    tail = list(EpochBatchSampler(103, 8, seed=5, epoch=2, start_batch=7))
    assert tail == single[7:] and len(EpochBatchSampler(103, 8, seed=5, epoch=2, start_batch=7)) == 5
    assert len(list(EpochBatchSampler(103, 8, seed=5, epoch=2, limit_batches=3))) == 3
    with pytest.raises(ValueError, match="divisible"):
        EpochBatchSampler(103, 9, seed=0, epoch=0, world=2)
    with pytest.raises(ValueError, match="larger than the training set"):
        EpochBatchSampler(5, 8, seed=0, epoch=0)


class _RandomItems(torch.utils.data.Dataset):
    def __len__(self):
        return 10

    def __getitem__(self, i):
        return torch.rand(3) + i


def test_seeded_items_are_reproducible_and_leave_global_rng_alone():
    ds = SeededItems(_RandomItems(), seed=7)
    torch.manual_seed(0)
    before = torch.get_rng_state()
    a = ds[(1, 4)]
    assert torch.equal(torch.get_rng_state(), before)
    torch.rand(5)  # moving the global RNG does not change the item
    assert torch.equal(ds[(1, 4)], a)
    assert not torch.equal(ds[(2, 4)], a) and not torch.equal(SeededItems(_RandomItems(), 8)[(1, 4)], a)


def test_rng_state_roundtrip():
    random.seed(1)
    torch.manual_seed(1)
    state = rng_state()
    first = (random.random(), torch.rand(3))
    set_rng_state(state)
    second = (random.random(), torch.rand(3))
    assert first[0] == second[0] and torch.equal(first[1], second[1])


# --- loss with auxiliary logits -------------------------------------------------------------------
def test_compute_loss_adds_weighted_auxiliary_logits():
    crit = SoftTargetCrossEntropy()
    logits, aux = torch.randn(4, 3), torch.randn(4, 3)
    target = torch.softmax(torch.randn(4, 3), 1)
    plain = crit(logits, target)
    assert torch.equal(compute_loss(logits, target, crit, 0.4), plain)
    assert torch.allclose(compute_loss((logits, aux), target, crit, 0.4), plain + 0.4 * crit(aux, target))
    assert torch.equal(compute_loss((logits, aux), target, crit, 0.0), plain)


def test_every_config_field_has_a_train_flag():
    """A TrainConfig field added without a --help group still gets its flag (prepare_steps once had none)."""
    import argparse
    from dataclasses import fields

    from kmix.cli.train import add_parser, config_from_args

    parser = add_parser(argparse.ArgumentParser().add_subparsers(), "train")
    dests = {a.dest for a in parser._actions}
    wanted = {f.name for f in fields(TrainConfig) if f.metadata.get("cli", True)}
    assert wanted <= dests, sorted(wanted - dests)
    assert config_from_args(parser.parse_args(["--prepare-steps", "4"])).prepare_steps == 4
