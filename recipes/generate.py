"""Write the paper's training recipes as YAML (run: python recipes/generate.py). The YAML is what is used.

Sources of the values (stated again at the top of every file):
- CIFAR: CutMix paper (Yun et al., ICCV 2019, sec. 4.1.2 / official CutMix-PyTorch README) — 300 epochs,
  batch 64, lr 0.25, lr x0.1 at epochs 150 and 225, SGD momentum 0.9 with Nesterov, weight decay 1e-4,
  CutMix alpha 1 with probability 0.5. Mixup alpha 1 (applied to every batch, as in the Mixup paper).
- DMixup/DCutMix K, alpha: Jeong et al. 2023 (issue 3's table); mixing probability p from the official
  DCutMix-PyTorch README commands where given (PyramidNet-110 DCutMix p=1, PyramidNet-200 CIFAR-100
  DCutMix p=0.5, CIFAR-10 p=1), otherwise that code's default p=1.
  The paper's text trains "with the setup of [CutMix]" (wd 1e-4, x0.1 at 150/225), while its official
  code's commands differ; where a row has an official command it comes in two flavours:
  `*_paper` (the paper's text, the values above) and `*_official` (clovaai/DCutMix README command and
  main.py defaults: lr 0.25, batch 64, Nesterov, wd 4e-5, x0.1 at 225/270 of 300 epochs, CIFAR-10's
  normalisation statistics (0.4914, 0.4822, 0.4465) / (0.2023, 0.1994, 0.2010) for CIFAR-10 and
  CIFAR-100 alike, 782 steps per epoch (DataLoader drop_last=False), partners by plain torch.randperm
  from each step's own batch, a Dirichlet draw per sample).
- mixup / cutmix are the field's methods (Zhang et al.; Yun et al., one lambda per batch, box clipped at
  the border); the paper's K=2 cases would be dmixup / dcutmix with k 2.
- CIFAR-10 comparison (issue 10): resnet20/resnet56 in He et al. 2016's CIFAR schedule, PreActResNet-18
  in the Mixup paper's CIFAR-10 schedule; Mixup/CutMix alpha 1 (their papers), DMixup K=5 alpha=0.2 and
  DCutMix K=3 alpha=1/3 (this paper's CIFAR-10 rows).
- ImageNet: CutMix paper ImageNet setup — ResNet-50, 300 epochs, batch 256, lr 0.1, x0.1 at 75/150/225,
  weight decay 1e-4, momentum 0.9 (Nesterov as in the CutMix code), mixing probability 1.
"""
from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent
THIRD = 1 / 3

CIFAR = dict(epochs=300, batch_size=64, lr=0.25, momentum=0.9, nesterov=True, weight_decay=1e-4,
             schedule="step", milestones=[150, 225], gamma=0.1, augment=True)
CIFAR_SRC = ("CIFAR setup of the CutMix paper (Yun et al., ICCV 2019): 300 epochs, batch 64, lr 0.25 "
             "x0.1 at 150/225, SGD momentum 0.9 Nesterov, wd 1e-4.")
IMAGENET = dict(data="data/imagenet", image_size=224, epochs=300, batch_size=256, lr=0.1, momentum=0.9,
                nesterov=True, weight_decay=1e-4, schedule="step", milestones=[75, 150, 225], gamma=0.1,
                augment=True, workers=8, model="tv:resnet50")
IMAGENET_SRC = ("ImageNet setup of the CutMix paper: ResNet-50, 300 epochs, batch 256, lr 0.1 x0.1 at "
                "75/150/225, momentum 0.9 (Nesterov, as the CutMix code), wd 1e-4, mixing probability 1. "
                "`data` is a placeholder: point it (or --data) at an ImageFolder root with train/ and val/.")

# mix name -> (k, alpha, p, note) for the K=2 baselines
BASELINES = {
    "none": (2, 1.0, 1.0, "vanilla: no mixing"),
    "mixup": (2, 1.0, 1.0, "Mixup (Zhang et al.) alpha 1 on every batch, one lambda per batch"),
    "cutmix": (2, 1.0, 0.5, "CutMix (Yun et al.: box centre uniform, clipped at the border, one lambda per batch) "
                            "alpha 1, probability 0.5 (CutMix paper, CIFAR)"),
}


def cifar_rows():
    """(file stem, values, comment) for every CIFAR training row of issue 3."""
    rows = []
    pn110 = dict(model="pyramidnet110")
    for mix, (k, a, p, note) in BASELINES.items():
        rows.append((f"cifar100_pyramidnet110_{'vanilla' if mix == 'none' else mix}",
                     dict(data="cifar100", **pn110, mix=mix, k=k, alpha=a, p=p), note))
    rows.append(("cifar100_pyramidnet110_dmixup", dict(data="cifar100", **pn110, mix="dmixup", k=3, alpha=THIRD, p=1.0),
                 "DMixup K=3 alpha=1/3 (Jeong et al.); p=1 (DCutMix code default)"))
    rows.append(("cifar100_pyramidnet110_dcutmix_paper", dict(data="cifar100", **pn110, mix="dcutmix", k=5, alpha=0.2,
                                                              p=1.0),
                 "DCutMix K=5 alpha=0.2, p=1 (official DCutMix README command; paper top-1 err 16.95%), in the paper's "
                 "text setup (the official command's trainer: the _official recipe)"))
    rows.append(("cifar100_pyramidnet200_dmixup", dict(data="cifar100", model="pyramidnet200", mix="dmixup", k=3,
                                                       alpha=1.0, p=1.0), "DMixup K=3 alpha=1; p=1 (code default)"))
    rows.append(("cifar100_pyramidnet200_dcutmix_paper", dict(data="cifar100", model="pyramidnet200", mix="dcutmix",
                                                              k=5, alpha=1.0, p=0.5),
                 "DCutMix K=5 alpha=1, p=0.5 (official README), in the paper's text setup"))
    rows.append(("cifar10_pyramidnet200_dmixup", dict(data="cifar10", model="pyramidnet200", mix="dmixup", k=5,
                                                      alpha=0.2, p=1.0), "DMixup K=5 alpha=0.2; p=1 (code default)"))
    rows.append(("cifar10_pyramidnet200_dcutmix_paper", dict(data="cifar10", model="pyramidnet200", mix="dcutmix", k=3,
                                                             alpha=THIRD, p=1.0),
                 "DCutMix K=3 alpha=1/3, p=1 (official README), in the paper's text setup"))
    for model, stem in (("preact_resnet18", "preactresnet18"), ("wrn16_8", "wrn16_8"), ("resnext29_4x24d", "resnext29_4x24d")):
        for mix, (k, a, p, note) in BASELINES.items():
            rows.append((f"cifar100_{stem}_{'vanilla' if mix == 'none' else mix}",
                         dict(data="cifar100", model=model, mix=mix, k=k, alpha=a, p=p), note))
        rows.append((f"cifar100_{stem}_dmixup", dict(data="cifar100", model=model, mix="dmixup", k=3, alpha=THIRD, p=1.0),
                     "DMixup K=3 alpha=1/3 (K, alpha as the PyramidNet-110 row; check the paper's Table 2)"))
        rows.append((f"cifar100_{stem}_dcutmix", dict(data="cifar100", model=model, mix="dcutmix", k=5, alpha=0.2, p=1.0),
                     "DCutMix K=5 alpha=0.2 (K, alpha as the PyramidNet-110 row; check the paper's Table 2)"))
    return [(stem, {**vals, **CIFAR}, f"{note}. {CIFAR_SRC}") for stem, vals, note in rows]


# clovaai/DCutMix: its README's three training commands, with main.py's trainer (issue 20)
OFFICIAL = dict(epochs=300, batch_size=64, lr=0.25, momentum=0.9, nesterov=True, weight_decay=4e-5, schedule="step",
                milestones=[225, 270], gamma=0.1, augment=True, norm_mean=[0.4914, 0.4822, 0.4465],
                norm_std=[0.2023, 0.1994, 0.2010], keep_last_batch=True, partners="permutation", prepare_steps=1)
OFFICIAL_SRC = ("Official DCutMix code (clovaai/DCutMix, README command and main.py): 300 epochs, batch 64, lr 0.25 "
                "x0.1 at int(0.75*300)=225 and int(0.9*300)=270, SGD momentum 0.9 Nesterov, wd 4e-5, crop+flip, "
                "normalisation mean (0.4914, 0.4822, 0.4465) std (0.2023, 0.1994, 0.2010) for CIFAR-10 and CIFAR-100 "
                "alike, DataLoader drop_last=False (782 steps per epoch), K-1 partners by plain torch.randperm from "
                "each step's own batch, a Dirichlet draw per sample, mixing coin --beta per batch. (That code reports "
                "the best test error over epochs; kmix's summary has it as best_top1_err.)")
OFFICIAL_COMMANDS = (  # stem, data, model, K (--trial), alpha, p (--beta), the README command's flags
    ("cifar100_pyramidnet110_dcutmix_official", "cifar100", "pyramidnet110", 5, 0.2, 1.0,
     "--alpha 0.2 --trial 5 --beta 1.0 --num_classes 100 --model pyramidnet"),
    ("cifar100_pyramidnet200_dcutmix_official", "cifar100", "pyramidnet200", 5, 1.0, 0.5,
     "--alpha 1.0 --trial 5 --beta 0.5 --num_classes 100 --model pyramidnet_200_240"),
    ("cifar10_pyramidnet200_dcutmix_official", "cifar10", "pyramidnet200", 3, THIRD, 1.0,
     "--alpha 0.33333333333 --trial 3 --beta 1 --num_classes 10 --model pyramidnet_200_240"),
)


def official_rows():
    """(file stem, values, comment) for the official DCutMix README's training commands."""
    return [(stem, dict(data=data, model=model, mix="dcutmix", k=k, alpha=alpha, p=p, **OFFICIAL),
             f"DCutMix K={k} alpha={alpha:.3g} p={p:g} as the official README command ({flags} --lr 0.25 "
             f"--batch_size 64 --wd 4e-5 --mode dcutmix). {OFFICIAL_SRC}")
            for stem, data, model, k, alpha, p, flags in OFFICIAL_COMMANDS]


# issue 10: the CIFAR-10 comparison on models a CPU (resnet20) or a short GPU budget (resnet56, PreActResNet-18)
# affords, each in the schedule published for that model; the mixers with the K=2 papers' settings and this
# paper's CIFAR-10 K, alpha (the cifar10_pyramidnet200 rows)
HE_CIFAR = dict(epochs=164, batch_size=128, lr=0.1, momentum=0.9, nesterov=False, weight_decay=1e-4,
                schedule="step", milestones=[82, 123], gamma=0.1, augment=True)
HE_SRC = ("CIFAR setup of He et al. 2016 (CVPR, sec. 4.2): batch 128, lr 0.1 divided by 10 at 32k and 48k "
          "iterations, stop at 64k, SGD momentum 0.9 (no Nesterov), wd 1e-4, 4-px padded crop + flip; in epochs "
          "of the 50k training set (391 iterations each): 164 epochs, x0.1 at 82 and 123.")
MIXUP_CIFAR10 = dict(epochs=200, batch_size=128, lr=0.1, momentum=0.9, nesterov=False, weight_decay=1e-4,
                     schedule="step", milestones=[100, 150], gamma=0.1, augment=True)
MIXUP_SRC = ("CIFAR-10 setup of the Mixup paper (Zhang et al., ICLR 2018, sec. 3.2 and its official code) for "
             "PreAct ResNet-18: 200 epochs, batch 128, lr 0.1 x0.1 at 100 and 150, SGD momentum 0.9, wd 1e-4.")
CIFAR10_MIXERS = {
    "vanilla": (dict(mix="none", k=2, alpha=1.0, p=1.0), "vanilla: no mixing"),
    "mixup": (dict(mix="mixup", k=2, alpha=1.0, p=1.0), "Mixup (Zhang et al.) alpha 1 on every batch (Mixup paper)"),
    "cutmix": (dict(mix="cutmix", k=2, alpha=1.0, p=0.5),
               "CutMix (Yun et al.: box centre uniform, clipped at the border) alpha 1, probability 0.5 (CutMix paper, "
               "CIFAR)"),
    "dmixup": (dict(mix="dmixup", k=5, alpha=0.2, p=1.0),
               "DMixup K=5 alpha=0.2, p=1 (Jeong et al. 2023, CIFAR-10 row; DCutMix code default p)"),
    "dcutmix": (dict(mix="dcutmix", k=3, alpha=THIRD, p=1.0),
                "DCutMix K=3 alpha=1/3, p=1 (Jeong et al. 2023, CIFAR-10 row; official DCutMix README)"),
}
CIFAR10_MODELS = (
    ("resnet20", "resnet20", HE_CIFAR, HE_SRC, "CPU budget (0.27M parameters): on a CPU, run it on a training "
     "subset with a schedule that fits, through kmix sweep --set (docs/results.md)."),
    ("resnet56", "resnet56", HE_CIFAR, HE_SRC, "GPU budget (0.85M parameters)."),
    ("preact_resnet18", "preactresnet18", MIXUP_CIFAR10, MIXUP_SRC, "GPU budget (11.2M parameters)."),
)


def cifar10_rows():
    """(file stem, values, comment) for issue 10's CIFAR-10 comparison: 3 models x 5 mixers."""
    rows = []
    for model, stem, schedule, source, budget in CIFAR10_MODELS:
        for name, (mix, note) in CIFAR10_MIXERS.items():
            rows.append((f"cifar10_{stem}_{name}", {"data": "cifar10", "model": model, **mix, **schedule},
                         f"{note}. {source} {budget}"))
    return rows


def imagenet_rows():
    """(file stem, values, comment) for every ImageNet ResNet-50 row of issue 3."""
    rows = [
        ("imagenet_resnet50_mixup", dict(mix="mixup", k=2, alpha=1.0), "Mixup alpha 1"),
        ("imagenet_resnet50_cutmix", dict(mix="cutmix", k=2, alpha=1.0), "CutMix alpha 1"),
        ("imagenet_resnet50_dmixup", dict(mix="dmixup", k=3, alpha=THIRD), "DMixup K=3 alpha=1/3"),
        ("imagenet_resnet50_dcutmix", dict(mix="dcutmix", k=3, alpha=THIRD), "DCutMix K=3 alpha=1/3"),
        ("imagenet_resnet50_saliency_dcutmix", dict(mix="saliency-dcutmix", k=3, alpha=THIRD),
         "Saliency-DCutMix K=3 alpha=1/3"),
    ]
    for k in (3, 4, 5, 7, 9):
        for mix, stem in (("dcutmix", "dcutmix"), ("saliency-dcutmix", "saliency_dcutmix")):
            rows.append((f"imagenet_resnet50_{stem}_k{k}", dict(mix=mix, k=k, alpha=THIRD),
                         f"K sweep: {mix} K={k}, alpha=1/3 (alpha held at the K=3 value)"))
    return [(stem, {**IMAGENET, **vals, "p": 1.0}, f"{note}. {IMAGENET_SRC}") for stem, vals, note in rows]


ORDER = ("data", "data_root", "image_size", "model", "mix", "k", "alpha", "p", "partners", "epochs", "batch_size",
         "keep_last_batch", "lr", "momentum", "nesterov", "weight_decay", "schedule", "milestones", "gamma", "augment",
         "norm_mean", "norm_std", "prepare_steps", "workers")


def to_yaml(values: dict, comment: str) -> str:
    import textwrap

    import yaml

    lines = ["# " + line for line in textwrap.wrap(comment, 100)]
    lines.append("# Generated by recipes/generate.py; run with: kmix train --recipe THIS_FILE [--out DIR]")
    ordered = {k: values[k] for k in ORDER if k in values}
    ordered.update({k: v for k, v in values.items() if k not in ordered})
    return "\n".join(lines) + "\n" + yaml.safe_dump(ordered, sort_keys=False, default_flow_style=None)


def main() -> None:
    for stem, values, comment in cifar_rows() + official_rows() + cifar10_rows() + imagenet_rows():
        (HERE / f"{stem}.yaml").write_text(to_yaml(values, comment))


if __name__ == "__main__":
    main()
