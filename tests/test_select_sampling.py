"""Sampling rules of `kmix subsample`: bottom, and CCS (coverage-centric stratified sampling) on constructed
cases: the hard cut, the strata, the emptiest-first budget split, exact per-class counts, seeding."""
from __future__ import annotations

import json

import numpy as np
import pytest

from kmix.cli.main import main
from kmix.select.subsample import (CCS_BINS, SubsampleConfig, ccs_budgets, ccs_default_beta, ccs_strata, class_counts,
                                   run_subsample, select_by_score, select_ccs)


def test_bottom_keeps_the_last_ranks():
    labels = np.zeros(20, dtype=np.int64)
    scores = np.arange(20, dtype=float)
    assert select_by_score(labels, scores, 0.2, "high", "bottom") == [0, 1, 2, 3]
    assert select_by_score(labels, scores, 0.2, "low", "bottom") == [16, 17, 18, 19]
    tied = np.array([1.0, 1.0, 1.0, 0.0])  # ties by index ascending: under "high" rank 2 is index 2
    assert select_by_score(np.zeros(4, dtype=np.int64), tied, 0.5, "high", "bottom") == [2, 3]


def test_budget_split_emptiest_first():
    # visit order by size: bin 1 (1), bin 3 (2), bin 2 (5), bin 0 (12); shares 10//4=2 -> 1, 9//3=3 -> 2,
    # 7//2=3 -> 3, 4//1=4 -> 4
    assert ccs_budgets(np.array([12, 1, 5, 2]), 10).tolist() == [4, 1, 3, 2]
    assert ccs_budgets(np.array([3, 0, 3]), 4).tolist() == [2, 0, 2]
    assert ccs_budgets(np.array([3, 3, 3]), 4).tolist() == [1, 1, 2]  # ties: lower bin visited first
    with pytest.raises(ValueError, match="budget 8 exceeds the 7 images"):
        ccs_budgets(np.array([3, 4]), 8)
    rng = np.random.default_rng(0)
    for _ in range(200):
        sizes = rng.integers(0, 30, rng.integers(1, 12))
        budget = int(rng.integers(0, sizes.sum() + 1))
        take = ccs_budgets(sizes, budget)
        assert take.sum() == budget and np.all(take <= sizes) and np.all(take >= 0)
        open_bins = take < sizes  # not emptied: their shares differ by at most one and are the largest
        if open_bins.any():
            assert take[open_bins].max() - take[open_bins].min() <= 1
            assert np.all(take[~open_bins] <= take[open_bins].max())


def test_strata_are_equal_width_with_the_maximum_in_the_last():
    scores = np.array([0.0, 0.24, 0.25, 0.5, 0.99, 1.0])
    assert ccs_strata(scores, 4).tolist() == [0, 0, 1, 2, 3, 3]
    assert ccs_strata(scores + 7.0, 4).tolist() == [0, 0, 1, 2, 3, 3]
    assert ccs_strata(np.full(5, 2.5), 4).tolist() == [0] * 5


def constructed_class():
    """24 images of one class: 6 hard ones (scores 5..10) and 18 in 4 strata of [0, 1] of sizes 1, 2, 5, 10."""
    hard = [5.0, 6.0, 7.0, 8.0, 9.0, 10.0]
    strata = [[0.0], [0.3, 0.3], [0.55, 0.6, 0.6, 0.6, 0.7], [0.8, 0.8, 0.85, 0.9, 0.9, 0.9, 0.95, 0.95, 1.0, 1.0]]
    scores = np.array(hard + [s for st in strata for s in st])
    stratum = np.array([-1] * 6 + [k for k, st in enumerate(strata) for _ in st])
    perm = np.random.default_rng(5).permutation(24)  # dataset order unrelated to the scores
    return scores[perm], stratum[perm]


def test_ccs_drops_the_hard_end_and_fills_strata_as_specified():
    scores, stratum = constructed_class()
    labels = np.zeros(24, dtype=np.int64)
    ratio = 9 / 24  # n = floor(9 + 0.5) = 9; beta 0.25 drops floor(6) = 6, exactly the hard ones
    picked = select_ccs(labels, scores, ratio, "high", beta=0.25, bins=4, seed=0)
    assert len(picked) == len(set(picked)) == 9
    assert np.all(stratum[picked] >= 0), "a dropped (hardest) image was kept"
    # sizes 1, 2, 5, 10 with budget 9: 1, 2, then 6//2=3, then 3
    assert np.bincount(stratum[picked], minlength=4).tolist() == [1, 2, 3, 3]
    assert select_ccs(labels, scores, ratio, "high", beta=0.25, bins=4, seed=0) == picked  # seeded
    draws = {tuple(select_ccs(labels, scores, ratio, "high", beta=0.25, bins=4, seed=s)) for s in range(8)}
    assert len(draws) > 1, "the draw inside a stratum does not depend on the seed"
    # the score negated and ranked the other way: the same cut and the same strata (mirrored)
    flipped = select_ccs(labels, -scores, ratio, "low", beta=0.25, bins=4, seed=0)
    assert np.all(stratum[flipped] >= 0) and np.bincount(stratum[flipped], minlength=4).tolist() == [1, 2, 3, 3]
    # without the cut the hard images form their own strata and are kept
    assert np.any(stratum[select_ccs(labels, scores, ratio, "high", beta=0.0, bins=4, seed=0)] < 0)


@pytest.mark.parametrize("ratio", [0.02, 0.1, 0.3, 0.5, 0.77, 1.0])
@pytest.mark.parametrize("beta", [None, 0.0, 0.3, 0.9])
def test_ccs_keeps_per_class_counts_exactly(ratio, beta):
    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(6), [1, 2, 7, 40, 113, 300])
    scores = np.concatenate([rng.exponential(size=1), rng.random(2), np.full(7, 0.5), rng.normal(size=40),
                             rng.exponential(size=113), rng.random(300) ** 3])
    perm = rng.permutation(len(labels))
    labels, scores = labels[perm], scores[perm]
    for bins in (1, 5, CCS_BINS):
        picked = np.array(select_ccs(labels, scores, ratio, "high", beta=beta, bins=bins, seed=2))
        assert len(np.unique(picked)) == len(picked)
        counts = class_counts(labels, ratio)
        assert {c: int((labels[picked] == c).sum()) for c in counts} == counts
    if ratio == 1.0:
        assert picked.tolist() == list(range(len(labels)))


def test_ccs_default_beta():
    assert [ccs_default_beta(r) for r in (0.01, 0.1, 0.3, 0.5, 0.9)] == [0.3, 0.3, 0.15, 0.0, 0.0]


def test_ccs_from_the_cli_records_its_settings(tmp_path, capsys):
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 2], [50, 30, 20])
    lines = ["index,label,el2n"] + [f"{i},{y},{float(v)!r}" for i, (y, v) in enumerate(zip(labels, rng.random(100)))]
    scores = tmp_path / "el2n.csv"  # no sidecar: the header's el2n column identifies the method
    scores.write_text("\n".join(lines) + "\n")
    out = tmp_path / "ccs.json"
    assert main(["subsample", "--scores", str(scores), "--by", "el2n", "--ratio", "0.1", "--sampling", "ccs",
                 "--seed", "3", "--out", str(out)]) == 0
    rec = json.loads(out.read_text())
    assert rec["ccs"] == {"beta": 0.3, "beta_source": "default", "bins": 50}
    assert (rec["order"], rec["sampling"], rec["per_class"]) == ("high", "ccs", {"0": 5, "1": 3, "2": 2})
    assert rec["indices"] == select_ccs(labels, np.loadtxt(scores, delimiter=",", skiprows=1)[:, 2], 0.1, "high",
                                        beta=0.3, bins=50, seed=3)
    rec2 = run_subsample(SubsampleConfig(ratio=0.5, by="el2n", scores=str(scores), sampling="ccs", ccs_beta=0.2,
                                         ccs_bins=4, out=str(tmp_path / "b.json")))
    assert rec2["ccs"] == {"beta": 0.2, "beta_source": "given", "bins": 4} and rec2["n_selected"] == 50
    assert "ccs" not in run_subsample(SubsampleConfig(ratio=0.5, by="el2n", scores=str(scores),
                                                      out=str(tmp_path / "c.json")))
    capsys.readouterr()
    for bad, msg in ((["--ccs-beta", "1"], "--ccs-beta) must be in [0, 1), got 1.0"),
                     (["--ccs-bins", "0"], "--ccs-bins) must be an int >= 1, got 0"),
                     (["--by", "forgetting"], "unknown method --by 'forgetting': not one of random, mc-dropout, "
                                              "k-center and not a column of scores file")):
        args = ["subsample", "--scores", str(scores), "--by", "el2n", "--ratio", "0.1", "--sampling", "ccs",
                "--out", str(tmp_path / "x.json")]
        assert main(args + bad) == 2
        err = capsys.readouterr().err
        assert msg in err, err
    assert "(its columns: el2n)" in err
    assert not (tmp_path / "x.json").exists()
    nan = tmp_path / "nan.csv"
    nan.write_text("index,label,el2n\n0,0,0.5\n1,0,nan\n")
    with pytest.raises(ValueError, match="NaN at index 1"):
        run_subsample(SubsampleConfig(ratio=0.5, by="el2n", scores=str(nan), sampling="ccs"))
