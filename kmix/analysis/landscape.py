"""Loss landscape of trained models: loss vs Gaussian weight noise (1-D, paper Fig. 3b) and the loss surface
along the top-2 Hessian eigenvectors (2-D, Fig. 3a), with top eigenvalues and the Hutchinson trace.

All scans use the model in eval mode (BatchNorm running statistics fixed, dropout off) on a fixed
evaluation subset; the model's weights are never modified (perturbed weights go through functional_call).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import torch
from tqdm.auto import tqdm

from kmix.analysis.hessian import LossOnData, Vector, hutchinson_trace, top_eigenpairs, vaxpy
from kmix.analysis.outputs import new_figure, save_figure, write_csv, write_json
from kmix.analysis.options import EvalOptions, limit_option
from kmix.options import data_option, option
from kmix.runs import Stream, generator_for

NOISE_MODES = ("plain", "filter")


def gaussian_direction(loss: LossOnData, mode: str, gen: torch.Generator) -> Vector:
    """A random weight-space direction.

    plain:  i.i.d. N(0, 1) on every parameter, so weights move by sigma * N(0, 1).
    filter: Li et al.'s filter normalisation: each output filter/row of a weight with >= 2 dims is rescaled
            to the norm of that filter of the weights; 1-D parameters (biases, BN affine) are not perturbed.
    """
    if mode not in NOISE_MODES:
        raise ValueError(f"noise mode must be one of {NOISE_MODES}, got {mode!r}")
    out = []
    for p in loss.params:
        p = p.detach()
        d = torch.randn(p.shape, generator=gen, dtype=p.dtype).to(p.device)
        if mode == "filter":
            if p.dim() <= 1:
                d = torch.zeros_like(p)
            else:
                pn = p.flatten(1).norm(dim=1).view(-1, *([1] * (p.dim() - 1)))
                dn = d.flatten(1).norm(dim=1).view(-1, *([1] * (p.dim() - 1)))
                d = d * pn / dn.clamp_min(1e-12)
        out.append(d)
    return out


def loss_vs_sigma(loss: LossOnData, sigmas: Sequence[float], repeats: int = 5, mode: str = "plain",
                  seed: int = 0, quiet: bool = True) -> list[dict]:
    """Rows (sigma, repeat, loss, top1_err) for weights + sigma * direction, `repeats` draws per sigma>0."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    if any(s < 0 or not math.isfinite(s) for s in sigmas):
        raise ValueError(f"sigmas must be finite and >= 0, got {list(sigmas)}")
    gen = generator_for(Stream.WEIGHT_NOISE, seed)
    base = [p.detach() for p in loss.params]
    rows = []
    jobs = [(s, r) for s in sigmas for r in range(1 if s == 0 else repeats)]
    for sigma, r in tqdm(jobs, desc="loss vs sigma", disable=quiet, leave=False):
        if sigma == 0:
            value, err = loss.evaluate()
        else:
            value, err = loss.evaluate(vaxpy(sigma, gaussian_direction(loss, mode, gen), base))
        rows.append({"sigma": sigma, "repeat": r, "loss": value, "top1_err": err})
    return rows


def summarize_sigma(rows: Sequence[dict]) -> list[dict]:
    """Per sigma: mean and standard deviation of the loss (and error) over the draws."""
    out = []
    for sigma in sorted({r["sigma"] for r in rows}):
        losses = [r["loss"] for r in rows if r["sigma"] == sigma]
        errs = [r["top1_err"] for r in rows if r["sigma"] == sigma]
        mean = sum(losses) / len(losses)
        std = math.sqrt(sum((v - mean) ** 2 for v in losses) / (len(losses) - 1)) if len(losses) > 1 else 0.0
        out.append({"sigma": sigma, "loss_mean": mean, "loss_std": std, "top1_err_mean": sum(errs) / len(errs),
                    "draws": len(losses)})
    return out


def loss_surface(loss: LossOnData, d1: Vector, d2: Vector, radius: float = 1.0, grid: int = 11,
                 quiet: bool = True) -> tuple[list[float], list[float], list[list[float]]]:
    """Loss at weights + a * d1 + b * d2 on a grid x grid lattice of a, b in [-radius, radius]."""
    if grid < 2 or radius <= 0:
        raise ValueError(f"need grid >= 2 and radius > 0, got grid={grid}, radius={radius}")
    coords = [-radius + 2 * radius * i / (grid - 1) for i in range(grid)]
    base = [p.detach() for p in loss.params]
    values = [[0.0] * grid for _ in range(grid)]
    bar = tqdm(total=grid * grid, desc="loss surface", disable=quiet, leave=False)
    for i, a in enumerate(coords):
        for j, b in enumerate(coords):
            values[i][j] = loss.evaluate(vaxpy(b, d2, vaxpy(a, d1, base)))[0]
            bar.update()
    bar.close()
    return coords, coords, values


@dataclass
class LandscapeConfig(EvalOptions):
    """`kmix landscape`: checkpoints, evaluation data and scan settings."""

    checkpoints: list[str] = option(help="one or more checkpoints", flag="--checkpoint")
    data: str = data_option()
    out: str = option("landscape", "output folder")
    sigmas: list[float] = option([0.0, 0.01, 0.02, 0.05, 0.1], "noise standard deviations")
    repeats: int = option(5, "draws per sigma > 0")
    noise: str = option("plain", "plain: w + sigma*N(0,1) on every weight; filter: per-filter normalised direction "
                                 "(Li et al. 2018), biases/BN untouched", choices=NOISE_MODES)
    grid: int = option(11, "surface points per axis")
    radius: float = option(0.25, "surface extent along each unit eigenvector, in weight-space L2 units")
    eigen: int = option(2, "top eigenvalues to compute, >= 2 for the surface")
    power_iters: int = option(50, "max power iterations per eigenvalue")
    trace_samples: int = option(20, "Hutchinson samples, 0 = skip")
    surface: bool = option(True, "compute the 2-D loss surface along the top-2 eigenvectors")
    limit: int | None = limit_option(256)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        if not self.checkpoints:
            raise ValueError("checkpoints: give at least one checkpoint")
        for c in self.checkpoints:
            if not Path(c).is_file():
                raise FileNotFoundError(f"checkpoint not found: {c}")
        if self.noise not in NOISE_MODES:
            raise ValueError(f"noise must be one of {NOISE_MODES}, got {self.noise!r}")
        if not self.sigmas or any(s < 0 or not math.isfinite(s) for s in self.sigmas):
            raise ValueError(f"sigmas must be a non-empty list of finite values >= 0, got {self.sigmas}")
        for name in ("repeats", "power_iters", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.trace_samples < 0:
            raise ValueError(f"trace_samples must be >= 0 (0 skips the trace), got {self.trace_samples}")
        if self.eigen < (2 if self.surface else 0):
            raise ValueError(f"eigen must be >= 2 for the 2-D surface (or >= 0 without it), got {self.eigen}")
        if self.surface and (self.grid < 2 or self.radius <= 0):
            raise ValueError(f"need grid >= 2 and radius > 0, got grid={self.grid}, radius={self.radius}")


def run_landscape(cfg: LandscapeConfig) -> dict:
    """Scan every checkpoint; write landscape.json, sigma.csv (mean/std per sigma), sigma_draws.csv, sigma.png
    and per-model surface_<model>.csv/png under cfg.out (rewritten after each model)."""
    from kmix.analysis.data import check_labels_fit, load_eval_data, stack_dataset, with_channels
    from kmix.analysis.models import load_analysis_model, resolve_device, unique_labels

    cfg.validate()
    device = resolve_device(cfg.device)
    from kmix.data.for_model import image_size_for

    dataset = info = size = None  # loaded at the first checkpoint's input size (ImageFolder data has none)
    batches_by_chans: dict[int, list] = {}  # loaded once per input-channel count, shared by the checkpoints
    out = Path(cfg.out)
    sigma_rows, models = [], []
    labels = unique_labels(cfg.checkpoints)
    for path, label in zip(cfg.checkpoints, labels):
        lm = load_analysis_model(path, arch=cfg.arch, device=device)
        wanted = image_size_for(cfg.data, lm.meta, cfg.image_size)
        if dataset is None:
            dataset, info = load_eval_data(cfg.data, root=cfg.data_root, limit=cfg.limit, seed=cfg.seed,
                                           image_size=wanted)
            size = wanted
        elif wanted != size:
            raise ValueError(f"checkpoint {path} takes {wanted} px images but {cfg.checkpoints[0]} takes {size}: "
                             f"compare checkpoints of one input size, or pass --image-size")
        check_labels_fit(info, lm.num_classes)
        chans = lm.meta.get("in_chans", info.in_chans)
        if chans not in batches_by_chans:
            batches_by_chans[chans] = stack_dataset(with_channels(dataset, info.in_chans, chans), cfg.batch_size)
        batches = batches_by_chans[chans]
        scan, rows = _scan_model(LossOnData(lm.model, batches, device), label, cfg, out)
        scan["checkpoint"] = str(path)
        models.append(scan)
        sigma_rows += rows
        result = _write_results(out, cfg, models, sigma_rows)  # after every model: an interruption loses one
    return result


def _scan_model(loss: LossOnData, label: str, cfg: LandscapeConfig, out: Path) -> tuple[dict, list[dict]]:
    """All scans of one model: loss vs sigma, eigenpairs, trace, surface (written to out); returns (info, rows)."""
    base_loss, base_err = loss.evaluate()
    rows = [{"model": label, **r} for r in loss_vs_sigma(loss, cfg.sigmas, cfg.repeats, cfg.noise, cfg.seed, cfg.quiet)]
    info = {"model": label, "loss": base_loss, "top1_err": base_err, "num_params": sum(p.numel() for p in loss.params)}
    if cfg.eigen > 0:
        eigvals, eigvecs = top_eigenpairs(loss, cfg.eigen, cfg.power_iters, seed=cfg.seed, quiet=cfg.quiet)
        info["top_eigenvalues"] = eigvals
    if cfg.trace_samples > 0:
        info["hessian_trace"], info["hessian_trace_stderr"] = hutchinson_trace(
            loss, cfg.trace_samples, seed=cfg.seed, quiet=cfg.quiet)
    if cfg.surface:
        a, b, grid = loss_surface(loss, eigvecs[0], eigvecs[1], cfg.radius, cfg.grid, cfg.quiet)
        write_csv(out / f"surface_{label}.csv",
                  [{"alpha": x, "beta": y, "loss": grid[i][j]} for i, x in enumerate(a) for j, y in enumerate(b)])
        _plot_surface(a, b, grid, f"{label}: loss along top-2 Hessian eigenvectors", out / f"surface_{label}.png")
        info["surface_min"] = min(min(r) for r in grid)
        info["surface_max"] = max(max(r) for r in grid)
    if not cfg.quiet:
        eig = ", ".join(f"{v:.4g}" for v in info.get("top_eigenvalues", []))
        tr = f"{info['hessian_trace']:.4g} ± {info['hessian_trace_stderr']:.2g}" if "hessian_trace" in info else "-"
        print(f"{label}: loss {base_loss:.4f}  top-1 err {base_err:.2f}%  top eigenvalues [{eig}]  trace {tr}")
    return info, rows


def _write_results(out: Path, cfg: LandscapeConfig, models: list[dict], sigma_rows: list[dict]) -> dict:
    summary_rows = [{"model": m["model"], **s} for m in models
                    for s in summarize_sigma([r for r in sigma_rows if r["model"] == m["model"]])]
    write_csv(out / "sigma_draws.csv", sigma_rows)
    write_csv(out / "sigma.csv", summary_rows)
    _plot_sigma(summary_rows, cfg.noise, out / "sigma.png")
    result = {"config": asdict(cfg), "models": models, "sigma": summary_rows}
    write_json(out / "landscape.json", result)
    return result


def _plot_sigma(rows: Sequence[dict], noise: str, path: Path) -> None:
    fig, ax = new_figure(figsize=(6, 4))
    for model in dict.fromkeys(r["model"] for r in rows):
        mine = [r for r in rows if r["model"] == model]
        xs = [r["sigma"] for r in mine]
        m = [r["loss_mean"] for r in mine]
        s = [r["loss_std"] for r in mine]
        ax.errorbar(xs, m, yerr=s, marker="o", capsize=3, label=model)
    ax.set_xlabel(f"sigma of Gaussian weight noise ({noise})")
    ax.set_ylabel("loss (mean ± std over draws)")
    ax.set_title("Loss under weight perturbation")
    ax.legend()
    ax.grid(alpha=0.3)
    save_figure(fig, path)


def _plot_surface(a: Sequence[float], b: Sequence[float], grid: Sequence[Sequence[float]], title: str,
                  path: Path) -> None:
    import numpy as np

    fig, _ = new_figure(figsize=(12, 4.8))
    fig.clf()
    A, B = np.meshgrid(np.asarray(a), np.asarray(b), indexing="ij")
    Z = np.asarray(grid)
    ax3 = fig.add_subplot(1, 2, 1, projection="3d")
    ax3.plot_surface(A, B, Z, cmap="viridis", linewidth=0, antialiased=True)
    ax3.set_xlabel("eigvec 1")
    ax3.set_ylabel("eigvec 2")
    ax3.set_zlabel("loss", labelpad=2)
    ax2 = fig.add_subplot(1, 2, 2)
    cs = ax2.contour(A, B, Z, levels=15, cmap="viridis")
    ax2.clabel(cs, inline=True, fontsize=7)
    ax2.set_xlabel("eigvec 1")
    ax2.set_ylabel("eigvec 2")
    fig.suptitle(title)
    fig.subplots_adjust(wspace=0.4)
    save_figure(fig, path)
