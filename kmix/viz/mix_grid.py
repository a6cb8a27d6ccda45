"""`kmix show`: a PNG grid of original images and their K-image mixes with soft labels and boxes."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from kmix.data.registry import build_dataset
from kmix.io import atomic_write
from kmix.mix import MIXERS, TWO_IMAGE_MIXERS
from kmix.options import data_option, data_root_option, option
from kmix.runs import Stream, generator_for

SHOWABLE = tuple(MIXERS) + tuple(TWO_IMAGE_MIXERS) + ("all",)  # all: the three K-image mixers


@dataclass
class ShowConfig:
    """What to show: dataset, which mixer(s), K, alpha, how many images, where to write the PNG."""

    data: str = data_option()
    data_root: str | None = data_root_option()
    mix: str = option("all", "which mixer to show (mixup/cutmix: the field's two-image methods, which ignore --k)",
                      choices=SHOWABLE, default_text="the three K-image mixers")
    k: int = option(3, "images mixed per sample")
    alpha: float | tuple[float, ...] = option(1.0, "Dirichlet alpha: one value or K comma-separated")
    num_images: int = option(8, "images per row")
    top: int = option(3, "classes named per soft label", cli=False)
    seed: int = option(0, "seed of the images and the mixes")
    image_size: int | None = option(None, "resize ImageFolder images", default_text="224")
    out: str = option("mix_grid.png", "PNG to write")

    def __post_init__(self):
        if self.mix not in SHOWABLE:
            raise ValueError(f"unknown mix {self.mix!r}: choose from {', '.join(SHOWABLE)}")
        if self.num_images < 2:
            raise ValueError(f"num_images must be >= 2 (mixing needs partners), got {self.num_images}")
        if self.top < 1:
            raise ValueError(f"top must be >= 1, got {self.top}")
        if self.mix in TWO_IMAGE_MIXERS and not isinstance(self.alpha, (int, float)):
            raise ValueError(f"alpha must be one value for {self.mix} (Beta(alpha, alpha)), got {self.alpha!r}")


def _label_text(row: torch.Tensor, names: tuple[str, ...], top: int) -> str:
    weights, classes = row.topk(min(top, row.numel()))
    return "\n".join(f"{names[c] if c < len(names) else c}: {w:.2f}"
                     for w, c in zip(weights.tolist(), classes.tolist()) if w > 0.005)


def show_mix(config: ShowConfig) -> Path:
    """Mix `num_images` random training images with each chosen mixer and save the grid; returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    dataset, info = build_dataset(config.data, root=config.data_root, train=True, augment=False,
                                  image_size=config.image_size)
    if len(dataset) < config.num_images:
        raise ValueError(f"dataset {config.data!r} has {len(dataset)} images, fewer than num_images={config.num_images}")
    gen = generator_for(Stream.SHOW_IMAGES, config.seed)
    picks = torch.randperm(len(dataset), generator=gen)[: config.num_images].tolist()
    items = [dataset[i] for i in picks]
    x = torch.stack([img for img, _ in items])
    y = torch.tensor([int(label) for _, label in items])
    names = info.class_names or tuple(str(i) for i in range(info.num_classes))
    mixer_names = list(MIXERS) if config.mix == "all" else [config.mix]

    rows = [("original", x, torch.nn.functional.one_hot(y, info.num_classes).float(), None)]
    for name in mixer_names:
        gen = generator_for(Stream.SHOW_MIX, config.seed)  # the same draw for every mixer
        if name in TWO_IMAGE_MIXERS:  # the field's Mixup / CutMix: K = 2, one lambda per batch
            mixer, title = TWO_IMAGE_MIXERS[name](info.num_classes, alpha=config.alpha, generator=gen), name
        else:
            mixer = MIXERS[name](num_classes=info.num_classes, k=config.k, alpha=config.alpha, generator=gen)
            title = f"{name} K={config.k}"
        params = mixer.sample_params(x)
        targets = torch.nn.functional.one_hot(y, info.num_classes).float()
        mixed, soft = mixer.apply(x, targets, params)
        rows.append((title, mixed, soft, params.boxes))

    n = config.num_images
    fig, axes = plt.subplots(len(rows), n, figsize=(1.7 * n, 2.2 * len(rows)), squeeze=False)
    cmap = "gray" if x.shape[1] == 1 else None
    for r, (title, images, soft, boxes) in enumerate(rows):
        for c in range(n):
            ax = axes[r][c]
            img = images[c].float().clamp(0, 1).permute(1, 2, 0).numpy()
            ax.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
            if boxes is not None:
                for j, (y0, x0, y1, x1) in enumerate(boxes[c].tolist()):
                    ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False,
                                           edgecolor=plt.cm.tab10(j % 10), linewidth=1.2))
            ax.set_xticks([]), ax.set_yticks([])
            ax.set_xlabel(_label_text(soft[c], names, config.top), fontsize=7)
            if c == 0:
                ax.set_ylabel(title, fontsize=9)
    alpha_txt = config.alpha if isinstance(config.alpha, (int, float)) else ",".join(f"{a:g}" for a in config.alpha)
    k_txt = "" if config.mix in TWO_IMAGE_MIXERS else f"K={config.k}, "
    fig.suptitle(f"kmix: {info.name}, {k_txt}alpha={alpha_txt} (labels: top classes with weights)", fontsize=10)
    fig.tight_layout()
    out = Path(config.out)
    try:
        atomic_write(out, lambda f: fig.savefig(f, dpi=110, format="png"))
    finally:
        plt.close(fig)
    return out
