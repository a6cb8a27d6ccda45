"""DMixup, DCutMix and SaliencyDCutMix: one configurable base, three ways of sampling parameters.

Each mixer is called as `x_mixed, y_soft = mix(x, y)`; sampling (`sample_params`) is separate
from applying (`apply`), so the same parameters can be inspected, reused or constrained.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn

from kmix.mix import fast as fast_path
from kmix.mix.apply import apply_cutmix, apply_mixup, mix_labels
from kmix.mix.params import MixParams
from kmix.mix.saliency import saliency_peaks
from kmix.mix.sampling import PARTNERS, sample_packed
from kmix.mix.targets import check_batch, soft_targets


def _check_alpha(alpha: float | Sequence[float], k: int) -> torch.Tensor:
    if isinstance(alpha, (int, float)) and not isinstance(alpha, bool):
        values = [float(alpha)] * k
    else:
        wrong_type = TypeError(f"alpha must be a float or a sequence of {k} floats, got {alpha!r}")
        if isinstance(alpha, (str, bytes)):  # iterable, but not a sequence of numbers
            raise wrong_type
        try:
            values = [float(a) for a in alpha]  # type: ignore[union-attr]
        except (TypeError, ValueError) as err:
            raise wrong_type from err
        if len(values) != k:
            raise ValueError(f"alpha must have k={k} values, got {len(values)}: {alpha!r}")
    if not all(a > 0 and a != float("inf") for a in values):
        raise ValueError(f"alpha must be positive and finite, got {alpha!r}")
    return torch.tensor(values, dtype=torch.float64)


class KImageMix(nn.Module):
    """Base of the K-image mixers: argument checks, the per-batch coin, labels, the call protocol.

    `partners`: how each of the K-1 partner columns is drawn: "derangement" (kmix's default, a random
    permutation without fixed points, so no sample is mixed with itself) or "permutation" (a plain random
    permutation, as the official DCutMix code draws them; about (K-1)/N of the slots then hold the
    anchor itself).

    `compiled=True` runs the per-call pixel step (parameters already drawn, on the host, as before) through
    torch.compile with static shapes, for loops that call the mixer with a fixed batch shape: the same draws,
    masks and labels, pixels equal (DMixup's within float rounding). The first call per batch shape compiles
    (seconds); calls that take the reference path (a gradient through x, a non-CPU generator) stay eager.
    """

    uses_boxes = True

    def __init__(self, *, num_classes: int, k: int = 2, alpha: float | Sequence[float] = 1.0, p: float = 1.0,
                 label_smoothing: float = 0.0, generator: torch.Generator | None = None,
                 partners: str = "derangement", compiled: bool = False):
        super().__init__()
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be an int >= 1, got {num_classes!r}")
        if isinstance(k, bool) or not isinstance(k, int) or k < 2:
            raise ValueError(f"k must be an int >= 2 (images mixed per sample), got {k!r}")
        if not 0.0 <= float(p) <= 1.0:
            raise ValueError(f"p must be in [0, 1], got {p!r}")
        if not 0.0 <= float(label_smoothing) < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing!r}")
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
        if partners not in PARTNERS:
            raise ValueError(f"partners must be one of {', '.join(PARTNERS)}, got {partners!r}")
        if not isinstance(compiled, bool):
            raise TypeError(f"compiled must be a bool, got {compiled!r}")
        self.partners = partners
        self.compiled = compiled
        self.num_classes = num_classes
        self.k = k
        self.alpha = _check_alpha(alpha, k)
        self.p = float(p)
        self.label_smoothing = float(label_smoothing)
        self.generator = generator
        self._concentrations: dict = {}  # (n, device) -> (alpha it was built from, (n, K) float64)

    def extra_repr(self) -> str:
        alpha = self.alpha.tolist()
        alpha_s = alpha[0] if len(set(alpha)) == 1 else alpha
        return (f"num_classes={self.num_classes}, k={self.k}, alpha={alpha_s}, p={self.p}, "
                f"label_smoothing={self.label_smoothing}, partners={self.partners!r}"
                + (", compiled=True" if self.compiled else ""))

    # --- sampling -----------------------------------------------------------------------------
    def sample_params(self, x: torch.Tensor) -> MixParams:
        """Draw proportions, partners and (for CutMix-style mixers) boxes for the batch x.

        The same draws as `sample_dirichlet`, `sample_partners` and `sample_boxes` in turn, packed
        into one tensor (`MixParams.packed`) so that `apply` moves them to x's device in one copy.
        """
        n, _, h, w = x.shape
        device = self.generator.device if self.generator is not None else torch.device("cpu")
        return sample_packed(n, self.k, self._concentration(n, device), self.generator,
                             size=(h, w) if self.uses_boxes else None, centers_of=self._centers_of(x),
                             partners=self.partners)

    def _concentration(self, n: int, device: torch.device) -> torch.Tensor:
        """The Dirichlet concentration alpha expanded to (n, K), cached per batch size and device."""
        cached = self._concentrations.get((n, device))
        if cached is None or cached[0] is not self.alpha:
            if len(self._concentrations) >= 8:
                self._concentrations.clear()
            conc = self.alpha.to(device=device, dtype=torch.float64).reshape(1, -1).expand(n, -1).contiguous()
            cached = self._concentrations[(n, device)] = (self.alpha, conc)
        return cached[1]

    def _centers_of(self, x: torch.Tensor):
        """None (boxes placed uniformly), or a function index (n, K) -> (n, K-1, 2) box centres."""
        return None

    def _coin(self) -> bool:
        if self.p >= 1.0:
            return True
        if self.p <= 0.0:
            return False
        device = self.generator.device if self.generator is not None else "cpu"
        return bool(torch.rand((), device=device, generator=self.generator) < self.p)

    # --- applying -----------------------------------------------------------------------------
    def apply(self, x: torch.Tensor, targets: torch.Tensor, params: MixParams, mask: torch.Tensor | None = None):
        """Mix x (the pool) and its soft targets (n, num_classes) with given parameters.

        The parameters may live on any device (CPU-sampled ones are copied to x's device once).
        """
        params = params.to(x.device)
        if params.boxes is None:
            mixed = apply_mixup(x, params.index, params.phi)
            return mixed, mix_labels(targets, params.index, params.phi)
        out = apply_cutmix(x, params.index, params.boxes, mask=mask, weights=params.weights)
        return (out[0], mix_labels(targets, params.index, out[1])) + tuple(out[2:])

    def fast_kind(self) -> str | None:
        """"uniform" or "saliency" when this mixer samples and applies as the K-image mixers do (box offsets
        uniform, or centred on saliency peaks), which kmix.mix.fast reproduces draw for draw; None for a
        subclass that changes either (it takes the reference path)."""
        cls = type(self)
        if cls.sample_params is not KImageMix.sample_params or cls.apply is not KImageMix.apply:
            return None
        if cls._centers_of is KImageMix._centers_of:
            return "uniform"
        return "saliency" if cls._centers_of is SaliencyDCutMix._centers_of else None

    def forward(self, x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor | None = None, *,
                check_labels: bool = True):
        """Mix a batch: (x, y) -> (mixed x, soft targets[, mixed mask]). `check_labels=False` skips the
        label-range check, which costs a host sync for CUDA labels (the training loop's labels are
        validated once with the dataset)."""
        who = type(self).__name__
        kind = self.fast_kind()
        fast = fast_path.eligible(self, x, y, kind)
        host_labels = fast and y.device.type == "cpu" and y.dim() == 1
        check_batch(x, y, self.num_classes, mask=mask, allow_mask=self.uses_boxes, who=who,
                    check_range=check_labels and not host_labels)
        y_np = y.numpy() if fast and y.device.type == "cpu" else None
        if host_labels and check_labels:
            fast_path.check_label_range(y_np, self.num_classes, who)
        if not self._coin():
            targets = soft_targets(y, self.num_classes, self.label_smoothing)
            return (x, targets) if mask is None else (x, targets, mask)
        if fast:  # the same draws and values as below, in a dozen torch ops (kmix.mix.fast)
            return fast_path.fast_mix(self, x, y, y_np, mask, kind)
        targets = soft_targets(y, self.num_classes, self.label_smoothing)
        return self.apply(x, targets, self.sample_params(x), mask=mask)


class DMixup(KImageMix):
    """K-image Mixup: x = sum_k phi_k x_{pi_k(n)}, label = sum_k phi_k y_{pi_k(n)}, phi per sample. (The field's
    Mixup, one lambda per batch, is `kmix.mix.Mixup`.)"""

    uses_boxes = False


class DCutMix(KImageMix):
    """K-image CutMix: K-1 nested boxes from stick-breaking phi; labels are exact pixel fractions. Each box lies
    fully inside its parent, so K=2 is not the field's CutMix (whose box is clipped at the border: `kmix.mix.CutMix`)."""


class SaliencyDCutMix(KImageMix):
    """DCutMix whose box k is centred on the saliency peak of the image pasted into it (clamped into
    its parent box), as SaliencyMix does for K=2."""

    def _centers_of(self, x: torch.Tensor):
        device = self.generator.device if self.generator is not None else torch.device("cpu")
        peaks = saliency_peaks(x).to(device)  # (n, 2), once per batch image
        return lambda index: peaks[index[:, 1:]]  # (n, K-1, 2): peak of the image filling box k
