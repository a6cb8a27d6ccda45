"""The OOD set of benchmarks/campaign.py: Imagenette images of classes that are not in CIFAR-10, centre-cropped
and resized to 32x32, packed as one small uint8 .npz (`images` (N, 32, 32, 3), `wnids` (N,)) that a GPU
window can carry (about 1.2 MB for 400 images; not committed: Imagenette is ImageNet's licence).

    python benchmarks/make_ood_pack.py                      # -> .gpu-data/ood_imagenette32.npz, 50 per class
    python benchmarks/make_ood_pack.py --per-class 100 --out PATH --root ../shared/data/imagenette-224/train

Classes: tench, cassette player, chain saw, church, French horn, gas pump, golf ball, parachute (Imagenette
minus English springer = dog and garbage truck = truck). The shared copy names its parachute folder n03888257
(ImageNet's parachute wnid); fast.ai's list says n03888605. Whichever of the two exists is used.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

WNIDS = ["n01440764", "n02979186", "n03000684", "n03028079", "n03394916", "n03425413", "n03445777",
         "n03888605|n03888257"]  # parachute: fast.ai's wnid | the shared copy's folder


def make_pack(root: Path, out: Path, per_class: int = 50, size: int = 32, seed: int = 0) -> dict:
    from PIL import Image

    rng = np.random.default_rng(seed)
    images, wnids = [], []
    for spec in WNIDS:
        folder = next((root / w for w in spec.split("|") if (root / w).is_dir()), None)
        if folder is None:
            raise FileNotFoundError(f"no folder {spec} under {root}")
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpeg", ".jpg", ".png"))
        for path in sorted(rng.choice(files, size=min(per_class, len(files)), replace=False)):
            with Image.open(path) as im:
                im = im.convert("RGB")
                side = min(im.size)
                left, top = (im.width - side) // 2, (im.height - side) // 2
                im = im.crop((left, top, left + side, top + side)).resize((size, size), Image.BICUBIC)
                images.append(np.asarray(im, dtype=np.uint8))
                wnids.append(folder.name)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, images=np.stack(images), wnids=np.array(wnids))
    return {"out": str(out), "images": len(images), "bytes": out.stat().st_size}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", default="../shared/data/imagenette-224/train", help="Imagenette ImageFolder root")
    p.add_argument("--out", default=".gpu-data/ood_imagenette32.npz")
    p.add_argument("--per-class", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    print(make_pack(Path(args.root), Path(args.out), args.per_class, seed=args.seed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
