"""Transform presets: CIFAR crop+flip and ImageNet-style resize/crop, all ending in float [0, 1] tensors.

Normalisation is deliberately absent: it lives in the model (`kmix.models.Normalized`).
"""
from __future__ import annotations

import torch
from torchvision.transforms import v2

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
CIFAR100_MEAN = (0.5071, 0.4865, 0.4409)
CIFAR100_STD = (0.2673, 0.2564, 0.2762)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

CIFAR_SIZE = 32
CIFAR_PAD = 4
RESIZE_RATIO = 256 / 224  # eval: resize the short side to size * 256/224, then centre-crop `size`


def _check_size(image_size: int) -> int:
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
        raise ValueError(f"image_size must be a positive int, got {image_size!r}")
    return image_size


def cifar_transform(augment: bool) -> v2.Transform:
    """uint8 (3, 32, 32) tensor -> float [0, 1]; with `augment`, random crop 32 (zero pad 4) + h-flip."""
    steps: list[v2.Transform] = []
    if augment:
        steps += [v2.RandomCrop(CIFAR_SIZE, padding=CIFAR_PAD), v2.RandomHorizontalFlip()]
    steps.append(v2.ToDtype(torch.float32, scale=True))
    return v2.Compose(steps)


def imagenet_transform(image_size: int = 224, *, augment: bool) -> v2.Transform:
    """PIL image -> float (3, S, S) in [0, 1]: RandomResizedCrop+flip, or Resize(S*256/224)+CenterCrop(S)."""
    size = _check_size(image_size)
    if augment:
        steps = [v2.RandomResizedCrop(size, antialias=True), v2.RandomHorizontalFlip()]
    else:
        steps = [v2.Resize(round(size * RESIZE_RATIO), antialias=True), v2.CenterCrop(size)]
    return v2.Compose([*steps, v2.ToImage(), v2.ToDtype(torch.float32, scale=True)])


def cutout(x: torch.Tensor, size: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Cutout (DeVries & Taylor 2017) on a batch (N, C, H, W): zero one size x size square per image.

    The centre is uniform over the image and the square is clipped at the borders, as in the
    original; vectorised over the batch (the parameters are drawn on `generator`'s device, CPU by
    default). Returns a new tensor; x is not modified.
    """
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise ValueError(f"cutout size must be an int >= 0, got {size!r}")
    if x.dim() != 4:
        raise ValueError(f"cutout expects a batch (N, C, H, W), got shape {tuple(x.shape)}")
    if size == 0:
        return x
    n, _, h, w = x.shape
    gen_device = generator.device if generator is not None else torch.device("cpu")
    cy = torch.randint(0, h, (n, 1), generator=generator, device=gen_device).to(x.device)
    cx = torch.randint(0, w, (n, 1), generator=generator, device=gen_device).to(x.device)
    ys, xs = torch.arange(h, device=x.device), torch.arange(w, device=x.device)
    in_rows = (ys >= cy - size // 2) & (ys < cy - size // 2 + size)  # (n, H)
    in_cols = (xs >= cx - size // 2) & (xs < cx - size // 2 + size)  # (n, W)
    keep = ~(in_rows[:, :, None] & in_cols[:, None, :])
    return x * keep[:, None].to(x.dtype)
