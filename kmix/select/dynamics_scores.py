"""Training-dynamics scores from a run recorded with `kmix train --record-dynamics` (its `dynamics.pt`):
forgetting events, AUM and Dyn-Unc. They register as `needs="run"` methods: `kmix score --method
forgetting|aum|dyn-unc --run RUN_DIR`.

The records (`kmix.train.dynamics`) hold, per epoch t and training image, the hard-label loss, the
logit margin z_y - max_{c != y} z_c and whether the prediction was right; NaN (correct False) where
the image was not seen that epoch. Unseen epochs are skipped, never counted as wrong.

- **forgetting** (Toneva et al., ICLR 2019): the number of forgetting events, i.e. transitions from
  correct to wrong between consecutive epochs in which the image was seen. An image never
  classified correctly in any epoch ("never learned") is, in the paper's words, forgotten infinitely
  often; it gets the finite value E + 1 (E = recorded epochs), larger than any real count (at most
  E // 2), so it ranks as the most forgotten and the file stays finite for `kmix subsample`. The
  extra column `never_learned` (1.0 / 0.0) marks them. High = hard.
- **aum** (Pleiss et al., NeurIPS 2020): the area under the margin, the mean over the seen epochs of
  the logit margin. Low (negative) = hard or mislabeled, so its default order is "low".
- **dyn-unc** (He et al., CVPR 2024): with p_t = exp(-loss_t) the target probability at the t-th
  epoch in which the image was seen (m such epochs), the std (ddof 1, i.e. divided by J - 1) of p
  over each window of J consecutive presentations, averaged over the windows k = 0 .. m - J - 1
  (m - J windows). As in the authors' code (ImageNet/get_coreset.py: a per-image history of its last
  J probabilities, updated only when the image is seen; torch.std), the window that ends at the
  last presentation is not used. An image seen at most J times gets NaN. High = uncertain = kept
  first.

An image the run never saw (outside its `--subset`, a `--val-fraction` hold-out) gets NaN, which
`kmix subsample` refuses: score runs trained on the whole training set.
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from kmix.select.score_method import DYN_UNC_WINDOW, ScoreMethod
from kmix.select.scores_write import write_score_table
from kmix.train.dynamics import read_dynamics

if TYPE_CHECKING:
    from kmix.select.score_config import ScoreConfig

DYNAMICS_FILE = "dynamics.pt"


def load_dynamics(run_dir: str | Path) -> dict:
    """The records of `run_dir`/dynamics.pt, checked: loss, margin (E, N) float, correct (E, N) bool, labels (N,).

    Read by kmix.train.dynamics.read_dynamics (kmix.runs.load_state: checksum, kind, older untagged files)."""
    path = Path(run_dir) / DYNAMICS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"run folder {run_dir} has no {DYNAMICS_FILE}: train it with kmix train "
                                "--record-dynamics (a run writes the file when it finishes; resume an "
                                "interrupted one)")
    rec = read_dynamics(path)  # missing, corrupt, damaged or another kind: an error naming the file
    e, n = rec["loss"].shape
    if rec["margin"].shape != (e, n) or rec["correct"].shape != (e, n) or rec["labels"].shape != (n,):
        raise ValueError(f"{path}: records of inconsistent shapes")
    if e < 1:
        raise ValueError(f"{path} holds no finished epoch")
    return rec


def forgetting_events(correct: torch.Tensor, seen: torch.Tensor) -> torch.Tensor:
    """Forgetting events (N,) float64 from correctness (E, N) and seen (E, N), bool.

    Counts t with the image seen and wrong at t and right at the previous epoch in which it was seen.
    Never learned (seen, never right): E + 1. Never seen: NaN.
    """
    if correct.shape != seen.shape or correct.dim() != 2:
        raise ValueError(f"correct and seen must both be (epochs, N), got {tuple(correct.shape)} and "
                         f"{tuple(seen.shape)}")
    e, n = correct.shape
    right = correct.bool() & seen.bool()
    steps = torch.arange(e).view(e, 1).expand(e, n)
    last_seen = torch.where(seen, steps, torch.full_like(steps, -1)).cummax(0).values  # last seen epoch <= t
    prev = torch.cat([torch.full((1, n), -1, dtype=torch.long), last_seen[:-1]])  # last seen epoch < t
    prev_right = right.gather(0, prev.clamp_min(0)) & (prev >= 0)
    events = (seen & ~right & prev_right).sum(0).double()
    ever_seen = seen.any(0)
    out = torch.where(ever_seen & ~right.any(0), torch.full_like(events, e + 1.0), events)
    return torch.where(ever_seen, out, torch.full_like(out, math.nan))


def area_under_margin(margin: torch.Tensor) -> torch.Tensor:
    """AUM (N,) float64: the mean over epochs of the margin (E, N), NaN entries (unseen) skipped."""
    return torch.nanmean(margin.double(), 0)


def dynamic_uncertainty(prob: torch.Tensor, window: int = DYN_UNC_WINDOW) -> torch.Tensor:
    """Dyn-Unc (N,) float64 from target probabilities (E, N) (NaN = unseen); see the module docstring.

    Per image, its m seen values in epoch order; windows k = 0 .. m - J - 1 of J of them; the mean over
    those windows of the std with ddof 1; NaN when m <= J.
    """
    if isinstance(window, bool) or not isinstance(window, int) or window < 2:
        raise ValueError(f"dyn-unc window must be an int >= 2 (epochs per window), got {window!r}")
    e = prob.shape[0]
    if e < window + 1:
        raise ValueError(f"dyn-unc with a window of {window} epochs needs at least {window + 1} recorded epochs, "
                         f"the run has {e}: pass a smaller --window or train longer")
    p = prob.double()
    missing = torch.isnan(p)
    packed = p.gather(0, torch.argsort(missing.int(), dim=0, stable=True))  # seen values first, in epoch order
    seen = (~missing).sum(0)
    std = packed.unfold(0, window, 1).std(-1, correction=1)  # (E - J + 1, N): windows over presentations
    valid = torch.arange(std.shape[0]).view(-1, 1) < (seen - window).view(1, -1)  # k <= m - J - 1
    count = valid.sum(0)
    total = torch.where(valid, std, 0.0).sum(0)
    return torch.where(count > 0, total / count.clamp_min(1), torch.full_like(total, math.nan))


def _forgetting(rec: dict, config: ScoreConfig) -> dict[str, torch.Tensor]:
    seen = ~torch.isnan(rec["loss"])
    score = forgetting_events(rec["correct"], seen)
    never = (seen.any(0) & ~(rec["correct"] & seen).any(0)).double()
    return {"forgetting": score, "never_learned": torch.where(seen.any(0), never, math.nan)}


def _aum(rec: dict, config: ScoreConfig) -> dict[str, torch.Tensor]:
    return {"aum": area_under_margin(rec["margin"])}


def _dyn_unc(rec: dict, config: ScoreConfig) -> dict[str, torch.Tensor]:
    return {"dyn-unc": dynamic_uncertainty(torch.exp(-rec["loss"].double()), config.dyn_unc_window)}


COMPUTE = {"forgetting": _forgetting, "aum": _aum, "dyn-unc": _dyn_unc}


def run_dynamics_score(config: ScoreConfig, method: ScoreMethod) -> dict:
    """Read `config.run_dir`/dynamics.pt, compute `method`'s score per training image, write the scores file."""
    t0 = time.perf_counter()
    rec = load_dynamics(config.run_dir)
    columns = COMPUTE[method.name](rec, config)
    n, epochs = rec["labels"].numel(), int(rec["loss"].shape[0])
    unseen = int(torch.isnan(rec["loss"]).all(0).sum())
    meta = {"method": method.name, "score_columns": list(method.columns), "orders": dict(method.orders),
            "run": str(config.run_dir), "epochs": epochs, "n": n, "unseen": unseen,
            "record_source": rec.get("source"), "data": rec.get("data"), "mix": rec.get("mix")}
    if method.name == "dyn-unc":
        meta["window"] = config.dyn_unc_window
    if method.name == "forgetting":
        meta["never_learned_value"] = epochs + 1
    written = write_score_table(config.out, rec["labels"], columns, meta)
    return {"method": method.name, "out": str(config.out), "n": n, "epochs": epochs, "unseen": unseen,
            "complete": True, "rank": 0, "world_size": 1, "wall_s": round(time.perf_counter() - t0, 3),
            "files": [str(p) for p in written]}


def _method(name: str, order: str, summary: str, reference: str) -> ScoreMethod:
    return ScoreMethod(name=name, needs="run", columns=(name,), orders={name: order}, run=run_dynamics_score,
                       summary=summary, reference=reference)


FORGETTING = _method("forgetting", "high", "forgetting events (correct -> wrong between epochs) of a recorded run; "
                     "never learned = epochs + 1", "Toneva et al., ICLR 2019")
AUM = _method("aum", "low", "area under the margin: mean logit margin (target minus largest other) over the "
              "recorded epochs (low = hard)", "Pleiss et al., NeurIPS 2020")
DYN_UNC = _method("dyn-unc", "high", "std (ddof 1) of the target probability over sliding windows of --window "
                  "epochs, averaged over windows", "He et al., CVPR 2024")

DYNAMICS_METHODS = (FORGETTING, AUM, DYN_UNC)  # registered by kmix.select.methods, in this order

__all__ = ["AUM", "DYNAMICS_METHODS", "DYN_UNC", "DYN_UNC_WINDOW", "FORGETTING", "area_under_margin",
           "dynamic_uncertainty", "forgetting_events", "load_dynamics", "run_dynamics_score"]
