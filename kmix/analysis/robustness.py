"""`kmix attack`: robust top-1 of a target model under white-box FGSM/PGD and PGD transferred from substitutes
(gray-box: same architecture, other seed; black-box: another architecture)."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from kmix.analysis.attacks import fgsm, pgd
from kmix.analysis.outputs import new_figure, save_figure, write_csv, write_json
from kmix.analysis.options import EvalOptions, limit_option
from kmix.options import data_option, option
from kmix.runs import Stream, generator_for


@dataclass
class AttackConfig(EvalOptions):
    """Target checkpoint, substitutes, eps list in /255 units, PGD settings, evaluation subset."""

    checkpoint: str = option(help="target checkpoint")
    substitutes: list[str] = option([], "kmix checkpoints to craft transfer PGD on", flag="--substitute", nargs="*")
    data: str = data_option()
    out: str = option("attack", "output folder")
    eps: list[float] = option([8.0], "L-inf radii in /255 units")
    steps: int = option(10, "PGD steps")
    step_size: float | None = option(None, "PGD step in /255 units", default_text="2.5*eps/steps")
    random_start: bool = option(True, "start PGD at a random point of the eps-ball (off: at the clean image)")
    whitebox_pgd: bool = option(True, "run white-box PGD on the target too")
    limit: int | None = limit_option(512)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        for c in [self.checkpoint, *self.substitutes]:
            if not Path(c).is_file():
                raise FileNotFoundError(f"checkpoint not found: {c}")
        if not self.eps:
            raise ValueError("eps: give at least one value (in /255 pixel units)")
        bad = [e for e in self.eps if not e >= 0]
        if bad:
            raise ValueError(f"eps must be >= 0 (in /255 pixel units), got {bad}")
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")
        if self.step_size is not None and self.step_size < 0:
            raise ValueError(f"step_size must be >= 0, got {self.step_size}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")


def run_attack(cfg: AttackConfig) -> dict:
    """Evaluate the target on clean, FGSM, PGD (white-box) and PGD from each substitute; write robust.csv/json/png."""
    from kmix.analysis.data import check_labels_fit, load_eval_data, make_loader, with_channels
    from kmix.data.for_model import image_size_for
    from kmix.analysis.models import load_analysis_model, resolve_device, unique_labels

    cfg.validate()
    device = resolve_device(cfg.device)
    labels = unique_labels([cfg.checkpoint, *cfg.substitutes])
    target = load_analysis_model(cfg.checkpoint, arch=cfg.arch, device=device)
    subs = [load_analysis_model(s, device=device) for s in cfg.substitutes]
    target.label = labels[0]
    for s, label in zip(subs, labels[1:]):
        s.label = label
    for s in subs:
        if s.num_classes != target.num_classes:
            raise ValueError(f"substitute {s.label} has {s.num_classes} classes, target has {target.num_classes}")
        if s.meta.get("in_chans") != target.meta.get("in_chans"):
            raise ValueError(f"substitute {s.label} takes {s.meta.get('in_chans')} channels, "
                             f"target takes {target.meta.get('in_chans')}")
    dataset, info = load_eval_data(cfg.data, root=cfg.data_root, limit=cfg.limit, seed=cfg.seed,
                                   image_size=image_size_for(cfg.data, target.meta, cfg.image_size))
    check_labels_fit(info, target.num_classes)
    dataset = with_channels(dataset, info.in_chans, target.meta.get("in_chans", info.in_chans))
    # (attack name, source label, kind, source model); a substitute file may be the target itself (white-box)
    sources = [("fgsm", target.label, "white-box", target)]
    if cfg.whitebox_pgd:
        sources.append(("pgd", target.label, "white-box", target))
    sources += [("pgd", s.label, "gray-box" if s.arch == target.arch else "black-box", s) for s in subs]
    correct, n = _count_correct(target, sources, make_loader(dataset, cfg.batch_size), cfg, device)
    rows = [{"attack": "clean", "source": target.label, "kind": "-", "eps_255": 0.0,
             "top1_acc": correct["clean"] / n, "n": n}]
    rows += [{"attack": a, "source": src, "kind": kind, "eps_255": e, "top1_acc": correct[(i, e)] / n, "n": n}
             for i, (a, src, kind, _) in enumerate(sources) for e in cfg.eps]
    out = Path(cfg.out)
    write_csv(out / "robust.csv", rows)
    result = {"config": asdict(cfg), "target": target.label, "target_arch": target.arch, "rows": rows}
    write_json(out / "robust.json", result)
    _plot(rows, target.label, out / "robust.png")
    if not cfg.quiet:
        print(format_table(rows))
    return result


def _count_correct(target, sources, loader, cfg: AttackConfig, device) -> tuple[dict, int]:
    """Correct target predictions on clean images and on each (source, eps) adversarial batch; returns (counts, n)."""
    correct = {"clean": 0}
    correct.update({(i, e): 0 for i in range(len(sources)) for e in cfg.eps})
    gen = generator_for(Stream.ATTACK_START, cfg.seed)
    step = cfg.step_size / 255.0 if cfg.step_size is not None else None
    n = 0
    for x, y in tqdm(loader, desc="attack", disable=cfg.quiet):
        x, y = x.to(device), torch.as_tensor(y).to(device)
        n += len(y)
        with torch.no_grad():
            correct["clean"] += int((target.model(x).argmax(1) == y).sum())
        for i, (attack, _, _, source) in enumerate(sources):
            for e in cfg.eps:
                if attack == "fgsm":
                    adv = fgsm(source.model, x, y, e / 255.0)
                else:
                    adv = pgd(source.model, x, y, e / 255.0, cfg.steps, step, cfg.random_start, gen)
                with torch.no_grad():
                    correct[(i, e)] += int((target.model(adv).argmax(1) == y).sum())
    return correct, n


def format_table(rows: list[dict]) -> str:
    """The robust-accuracy table as aligned text."""
    head = f"{'attack':<7} {'source':<22} {'kind':<10} {'eps/255':>8} {'top-1 acc':>10}"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['attack']:<7} {r['source'][:22]:<22} {r['kind']:<10} {r['eps_255']:>8g} {r['top1_acc']:>10.4f}")
    return "\n".join(lines)


def _plot(rows: list[dict], target: str, path: Path) -> None:
    fig, ax = new_figure(figsize=(6, 4))
    clean = rows[0]["top1_acc"]
    series = dict.fromkeys((r["attack"], r["source"], r["kind"]) for r in rows[1:])
    for attack, src, kind in series:
        mine = sorted((r["eps_255"], r["top1_acc"]) for r in rows[1:]
                      if (r["attack"], r["source"], r["kind"]) == (attack, src, kind))
        ax.plot([0.0] + [m[0] for m in mine], [clean] + [m[1] for m in mine], marker="o",
                label=f"{attack} from {src} ({kind})")
    ax.set_xlabel("eps (/255, L-inf)")
    ax.set_ylabel(f"top-1 accuracy of {target}")
    ax.set_ylim(0, 1.02)
    ax.set_title("Robust accuracy")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    save_figure(fig, path)
