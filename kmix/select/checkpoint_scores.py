"""Per-image scores from a trained model's prediction on the clean training image: EL2N, GraNd, entropy, margin.

Each is computed per checkpoint with the model in eval mode on the un-augmented training set, and
the file's score column is the **mean over the checkpoints given** (Paul et al. 2021 average EL2N
and GraNd over independently trained models; pass several `--checkpoint`s for that). With several
checkpoints the per-checkpoint values are kept as `<name>_0, <name>_1, ...`.

- **el2n** (Paul et al., NeurIPS 2021): ||softmax(f(x)) - onehot(y)||_2. High = hard.
- **grand** (same paper): the norm of the per-sample gradient of the cross-entropy loss.
  `params="last"` (the default) takes only the classifier layer: for logits z = W h + b the
  gradient is ((p - y) h^T, p - y), whose norm is ||p - y|| * sqrt(||h||^2 + 1) (without the
  "+ 1" when the layer has no bias), exact and as cheap as a forward pass. `params="all"` takes
  every trainable parameter, with per-sample gradients by `torch.func.vmap(grad(...))` (the
  paper's definition; costs one backward per sample's worth of memory, see `grand_all`). High = hard.
- **entropy**: -sum_c p_c log p_c of the predicted distribution (nats). High = uncertain.
- **margin**: p_(1) - p_(2), the gap between the two largest predicted probabilities (label-free
  uncertainty margin, as in uncertainty sampling). Low = uncertain, so its default order is "low".
  (The label-aware logit margin of AUM belongs to the training-dynamics scores.)
"""
from __future__ import annotations

import os
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from kmix.data.provenance import data_provenance
from kmix.devices import resolve_device
from kmix.io import file_sha256
from kmix.select.bank import dataset_labels
from kmix.select.ranks import rank_and_world
from kmix.select.score_method import ScoreMethod
from kmix.select.scores_write import write_score_table

GRAND_ALL_BYTES = 1 << 30  # per-sample gradients held at once by grand_all (float32), at most this much


def _loader(dataset: Dataset, batch_size: int, quiet: bool, desc: str):
    return tqdm(DataLoader(dataset, batch_size=batch_size, shuffle=False), disable=quiet, desc=desc, unit="batch")


@torch.inference_mode()
def predict(model: nn.Module, dataset: Dataset, *, batch_size: int = 256, device: str | torch.device = "cpu",
            head_inputs: bool = False, quiet: bool = True) -> tuple[torch.Tensor, torch.Tensor | None, bool]:
    """Logits (N, C) float64 of the eval-mode `model` on every image, in dataset order.

    With `head_inputs`, also the input (N, D) float64 of the classifier layer, i.e. the nn.Linear
    whose output *is* the returned logits (found by identity on the first batch, so a model that
    changes its logits after the last Linear is refused rather than mis-scored), and whether that
    layer has a bias. Otherwise (logits, None, False).
    """
    model = model.to(device).eval()
    logits, feats = [], []
    has_bias = False
    captured: dict[nn.Module, tuple[torch.Tensor, torch.Tensor]] = {}
    handles = []
    if head_inputs:
        for m in model.modules():
            if isinstance(m, nn.Linear):
                handles.append(m.register_forward_hook(
                    lambda mod, inp, out: captured.__setitem__(mod, (inp[0], out))))
        if not handles:
            raise ValueError(f"model {type(model).__name__} has no nn.Linear classifier (needed by GraNd's "
                             "last-layer form; use params='all')")
    try:
        for x, _ in _loader(dataset, batch_size, quiet, "predict"):
            captured.clear()
            out = model(x.to(device))
            logits.append(out.double().cpu())
            if head_inputs:
                head = [(m, h) for m, (h, o) in captured.items() if o is out]
                if not head:
                    raise ValueError(f"the logits of model {type(model).__name__} are not the output of an "
                                     "nn.Linear layer, so GraNd's last-layer closed form does not apply "
                                     "(use --grand-params all)")
                module, h = head[0]
                has_bias = module.bias is not None
                feats.append(h.flatten(1).double().cpu())
    finally:
        for h in handles:
            h.remove()
    return torch.cat(logits), (torch.cat(feats) if head_inputs else None), has_bias


def el2n_from_logits(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """EL2N (N,): ||softmax(logits) - onehot(labels)||_2 per row."""
    probs = logits.double().softmax(-1)
    return (probs - F.one_hot(labels, probs.shape[1]).to(probs.dtype)).norm(dim=1)


def entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """Predictive entropy (N,) in nats: -sum p log p with log p from log_softmax (exact for p -> 0)."""
    logp = logits.double().log_softmax(-1)
    return -(logp.exp() * logp).sum(-1)


def margin_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """Prediction margin (N,): largest minus second-largest softmax probability (needs >= 2 classes)."""
    if logits.shape[1] < 2:
        raise ValueError(f"margin needs at least 2 classes, got {logits.shape[1]}")
    top2 = logits.double().softmax(-1).topk(2, dim=1).values
    return top2[:, 0] - top2[:, 1]


def grand_last_from_logits(logits: torch.Tensor, labels: torch.Tensor, head_inputs: torch.Tensor,
                           has_bias: bool) -> torch.Tensor:
    """Last-layer GraNd (N,): the norm of d CE / d (W, b) of the classifier z = W h + b, in closed form.

    dL/dz = p - y, dL/dW = (p - y) h^T, dL/db = p - y, so the norm is ||p - y|| * sqrt(||h||^2 + [bias]).
    """
    residual = el2n_from_logits(logits, labels)
    return residual * (head_inputs.double().pow(2).sum(1) + float(has_bias)).sqrt()


def grand_all(model: nn.Module, dataset: Dataset, *, batch_size: int = 256, device: str | torch.device = "cpu",
              quiet: bool = True) -> torch.Tensor:
    """Full GraNd (N,): the norm over *all* trainable parameters of each image's CE-loss gradient.

    Per-sample gradients by `torch.func.vmap(grad(loss))` with the model in eval mode (BatchNorm
    uses its running statistics, so each sample's gradient is its own). Samples go in micro-batches
    of at most `batch_size` and at most GRAND_ALL_BYTES of float32 gradients at once.
    """
    from torch.func import functional_call, grad, vmap

    model = model.to(device).eval()
    params = {k: v.detach() for k, v in model.named_parameters() if v.requires_grad}
    if not params:
        raise ValueError(f"model {type(model).__name__} has no trainable parameters")
    buffers = dict(model.named_buffers())
    n_params = sum(v.numel() for v in params.values())
    micro = max(1, min(batch_size, GRAND_ALL_BYTES // (4 * n_params)))

    def loss(p, x, y):
        return F.cross_entropy(functional_call(model, (p, buffers), (x.unsqueeze(0),)), y.unsqueeze(0))

    per_sample_grad = vmap(grad(loss), in_dims=(None, 0, 0))
    norms = []
    for x, y in _loader(dataset, micro, quiet, "grand"):
        grads = per_sample_grad(params, x.to(device), torch.as_tensor(y).to(device))
        sq = sum(g.flatten(1).double().pow(2).sum(1) for g in grads.values())
        norms.append(sq.sqrt().cpu())
    return torch.cat(norms)


def _per_checkpoint_el2n(model, dataset, labels, *, config) -> torch.Tensor:
    logits, _, _ = predict(model, dataset, batch_size=config.batch_size, device=_device(config), quiet=config.quiet)
    return el2n_from_logits(logits, labels)


def _per_checkpoint_entropy(model, dataset, labels, *, config) -> torch.Tensor:
    logits, _, _ = predict(model, dataset, batch_size=config.batch_size, device=_device(config), quiet=config.quiet)
    return entropy_from_logits(logits)


def _per_checkpoint_margin(model, dataset, labels, *, config) -> torch.Tensor:
    logits, _, _ = predict(model, dataset, batch_size=config.batch_size, device=_device(config), quiet=config.quiet)
    return margin_from_logits(logits)


def _per_checkpoint_grand(model, dataset, labels, *, config) -> torch.Tensor:
    if config.grand_params == "all":
        return grand_all(model, dataset, batch_size=config.batch_size, device=_device(config),
                         quiet=config.quiet).double()
    logits, feats, has_bias = predict(model, dataset, batch_size=config.batch_size, device=_device(config),
                                      head_inputs=True, quiet=config.quiet)
    return grand_last_from_logits(logits, labels, feats, has_bias)


def _device(config) -> torch.device:
    return resolve_device(config.device)


def run_checkpoint_score(config, method: ScoreMethod) -> dict:
    """The shared runner of checkpoint methods: per checkpoint, load the model and compute
    `method.per_checkpoint`; write the mean over checkpoints as column `method.columns[0]` (plus
    `<name>_<j>` per checkpoint when there are several) and a sidecar recording how.

    Runs in one process (a forward pass per checkpoint needs no sharding): under torchrun, ranks
    other than 0 return at once with complete=False.
    """
    from kmix.data.for_model import check_data_fits_model, image_size_for, train_data_for_model
    from kmix.train.checkpoint import load_model

    rank, world_size = rank_and_world(config)
    summary = {"method": method.name, "out": str(config.out), "rank": rank, "world_size": world_size}
    if rank != 0:
        return {**summary, "complete": False, "wall_s": 0.0}
    t0 = time.perf_counter()
    device = _device(config)
    dataset = info = labels = None
    values = []
    for path in config.checkpoints:
        model, meta = load_model(path, map_location=device)
        if dataset is None:  # at the first checkpoint's input size (ImageFolder data)
            dataset, info = train_data_for_model(config.data, meta, root=config.data_root, checkpoint=path)
            labels = dataset_labels(dataset)
            size = image_size_for(config.data, meta)
        elif image_size_for(config.data, meta) != size:
            raise ValueError(f"checkpoint {path} takes {meta['input_size']} px images but {config.checkpoints[0]} "
                             f"takes {size}: average checkpoints of one input size")
        check_data_fits_model(info, meta, data=config.data, checkpoint=path)
        if int(labels.max()) >= meta["num_classes"]:
            raise ValueError(f"dataset labels reach {int(labels.max())} but checkpoint {path} has "
                             f"num_classes={meta['num_classes']}: wrong --data for this checkpoint?")
        v = method.per_checkpoint(model, dataset, labels, config=config).double().cpu()
        if not torch.isfinite(v).all():
            bad = int(torch.nonzero(~torch.isfinite(v))[0])
            raise FloatingPointError(f"--method {method.name}: non-finite score at index {bad} with checkpoint {path}")
        values.append(v)
    stacked = torch.stack(values, 1)  # (N, checkpoints)
    name = method.columns[0]
    columns = {name: stacked.mean(1)}
    if stacked.shape[1] > 1:
        columns.update({f"{name}_{j}": stacked[:, j] for j in range(stacked.shape[1])})
    meta_out = {"method": method.name, "score_columns": list(method.columns), "orders": dict(method.orders),
                "checkpoints": list(config.checkpoints), "reduce": "mean over checkpoints",
                "checkpoint_sha256": [file_sha256(p) for p in config.checkpoints],
                "data_provenance": data_provenance(config.data, info, len(labels), config.data_root),
                "data": config.data, "n": len(labels), "model_mode": "eval", "augmentation": "none"}
    if method.name == "grand":
        meta_out["grand_params"] = config.grand_params
    written = write_score_table(config.out, labels, columns, meta_out)
    wall = time.perf_counter() - t0
    return {**summary, "n": len(labels), "checkpoints": len(values), "complete": True,
            "wall_s": round(wall, 3), "files": [os.fspath(p) for p in written]}


def _method(name: str, per_checkpoint, order: str, summary: str, reference: str) -> ScoreMethod:
    return ScoreMethod(name=name, needs="checkpoint", columns=(name,), orders={name: order}, run=run_checkpoint_score,
                       per_checkpoint=per_checkpoint, summary=summary, reference=reference)


EL2N = _method("el2n", _per_checkpoint_el2n, "high", "||softmax - onehot||_2, mean over checkpoints",
               "Paul et al., NeurIPS 2021")
GRAND = _method("grand", _per_checkpoint_grand, "high",
                "per-sample CE gradient norm (--grand-params last: classifier layer, closed form; all: every "
                "parameter), mean over checkpoints", "Paul et al., NeurIPS 2021")
ENTROPY = _method("entropy", _per_checkpoint_entropy, "high", "entropy of the predicted distribution (nats)",
                  "uncertainty sampling")
MARGIN = _method("margin", _per_checkpoint_margin, "low",
                 "top-1 minus top-2 predicted probability (low = uncertain)", "uncertainty sampling")

CHECKPOINT_METHODS = (EL2N, GRAND, ENTROPY, MARGIN)  # registered by kmix.select.methods, in this order

__all__ = ["CHECKPOINT_METHODS", "EL2N", "ENTROPY", "GRAND", "MARGIN", "el2n_from_logits", "entropy_from_logits",
           "grand_all", "grand_last_from_logits", "margin_from_logits", "predict", "run_checkpoint_score"]
