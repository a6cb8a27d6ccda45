"""`kmix eval`: top-k against brute force, class subsets, plain state_dict models, clear errors."""
from __future__ import annotations

import json

import pytest
import torch

from kmix.analysis.evaluate import EvalConfig, resolve_label_space, run_eval, topk_correct
from kmix.analysis.models import IMAGENET_MEAN, IMAGENET_STD, load_analysis_model
from kmix.cli.main import main
from kmix.models import Normalized, build_model
from kmix.train.checkpoint import load_model
from analysis_support import digits, train_digits_checkpoint


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return train_digits_checkpoint(tmp_path_factory.mktemp("eval") / "m.pt")


def test_support_checkpoint_learns(ckpt):
    """The helper's checkpoints are trained (well above chance), so the analyses see a real model."""
    model, meta = load_model(ckpt)
    x, y = digits(False).tensors
    with torch.no_grad():
        acc = (model(x).argmax(1) == y).float().mean().item()
    assert meta["name"] == "small_cnn" and acc > 0.5


def test_topk_matches_brute_force():
    gen = torch.Generator().manual_seed(0)
    logits, labels = torch.randn(50, 7, generator=gen), torch.randint(0, 7, (50,), generator=gen)
    hits = topk_correct(logits, labels, ks=(1, 3))
    for i in range(50):
        rank = int((logits[i] > logits[i, labels[i]]).sum())  # classes scored above the label
        assert bool(hits[1][i]) == (rank == 0) and bool(hits[3][i]) == (rank < 3)
    assert topk_correct(logits[:, :2], labels.clamp(max=1), ks=(5,))[5].all()  # k capped at C


def test_eval_on_digits_and_on_a_class_subset(ckpt, tmp_path):
    model, _ = load_model(ckpt)
    x, y = digits(False).tensors
    with torch.no_grad():
        logits = model(x)
    res = run_eval(EvalConfig(checkpoint=str(ckpt), out=str(tmp_path), device="cpu", quiet=True))
    assert res["n"] == 360 and res["top1_acc"] == pytest.approx((logits.argmax(1) == y).float().mean().item())
    assert json.loads((tmp_path / "eval.json").read_text())["top1_err"] == pytest.approx(res["top1_err"])
    assert (tmp_path / "per_class.png").stat().st_size > 1000

    subset = ["7", "3", "1"]  # out of model order: logits columns 7, 3, 1; labels matched by name
    (tmp_path / "sub.json").write_text(json.dumps({"classes": subset}))
    sub = run_eval(EvalConfig(checkpoint=str(ckpt), classes=str(tmp_path / "sub.json"), device="cpu", quiet=True))
    keep = (y == 7) | (y == 3) | (y == 1)
    pred = torch.tensor([7, 3, 1])[logits[keep][:, [7, 3, 1]].argmax(1)]
    assert sub["n"] == int(keep.sum()) and sub["num_classes"] == 3
    assert sub["top1_acc"] == pytest.approx((pred == y[keep]).float().mean().item())
    assert sub["top5_acc"] == 1.0  # 3 classes: top-5 always hits
    assert [r["class"] for r in sub["per_class"]] == subset


def test_plain_state_dict_with_arch(tmp_path):
    torch.manual_seed(0)
    net = build_model("small_cnn", num_classes=10, in_chans=3).eval()
    torch.save(net.state_dict(), tmp_path / "plain.pth")
    lm = load_analysis_model(tmp_path / "plain.pth", arch="small_cnn", num_classes=10)
    x = torch.rand(4, 3, 16, 16)
    with torch.no_grad():
        assert torch.allclose(lm.model(x), Normalized(net, IMAGENET_MEAN, IMAGENET_STD)(x), atol=1e-6)
    # digits are gray: fed to the 3-channel model by repetition
    res = run_eval(EvalConfig(checkpoint=str(tmp_path / "plain.pth"), arch="small_cnn", num_classes=10, limit=50,
                              device="cpu", quiet=True))
    assert res["n"] == 50
    assert load_analysis_model(tmp_path / "plain.pth", arch="small_cnn").num_classes == 10  # from fc.weight
    with pytest.raises(ValueError, match="does not fit"):
        load_analysis_model(tmp_path / "plain.pth", arch="small_cnn", num_classes=7)
    with pytest.raises(ValueError, match="dataset classes do not match"):
        resolve_label_space([c for c in "abcdefghij"], 10, [str(i) for i in range(10)], None)


def test_eval_bad_input(ckpt, tmp_path, capsys):
    bad = tmp_path / "classes.txt"
    bad.write_text("1\nn01440764\n")
    assert main(["eval", "--checkpoint", str(ckpt), "--classes", str(bad), "--device", "cpu", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "kmix eval: error" in err and "n01440764" in err
    assert main(["eval", "--checkpoint", str(tmp_path / "missing.pt")]) == 2
    assert "checkpoint not found" in capsys.readouterr().err
    assert main(["eval", "--checkpoint", str(ckpt), "--classes", str(tmp_path / "none.txt")]) == 2
    assert "class list not found" in capsys.readouterr().err
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    assert main(["eval", "--checkpoint", str(tmp_path / "junk.pt")]) == 2
    assert "corrupt" in capsys.readouterr().err


def test_eval_on_an_imagefolder_matches_labels_by_name(ckpt, tmp_path):
    """ImageNet-A layout: folders named after a few of the model's classes, evaluated with and without a subset."""
    import numpy as np
    from PIL import Image

    from kmix.data.registry import build_dataset

    x, y = digits(False).tensors
    for name in ("7", "3"):
        (tmp_path / "imgs" / name).mkdir(parents=True)
        for i in torch.nonzero(y == int(name)).flatten()[:12].tolist():
            Image.fromarray((x[i, 0].numpy() * 255).round().astype(np.uint8)).save(tmp_path / "imgs" / name / f"{i}.png")
    ds, info = build_dataset(str(tmp_path / "imgs"), train=False, image_size=16)
    assert list(info.class_names) == ["3", "7"]  # ImageFolder label 0 is "3", which is the model's class 3
    model, _ = load_model(ckpt)
    imgs = torch.stack([ds[i][0].mean(0, keepdim=True) for i in range(len(ds))])  # RGB -> gray, as the adapter
    truth = torch.tensor([3 if t == 0 else 7 for t in ds.targets])
    with torch.no_grad():
        logits = model(imgs)
    full = run_eval(EvalConfig(checkpoint=str(ckpt), data=str(tmp_path / "imgs"), image_size=16, device="cpu",
                               quiet=True))
    assert full["n"] == 24 and full["top1_acc"] == pytest.approx((logits.argmax(1) == truth).float().mean().item())
    (tmp_path / "sub.txt").write_text("7\n3\n")
    sub = run_eval(EvalConfig(checkpoint=str(ckpt), data=str(tmp_path / "imgs"), classes=str(tmp_path / "sub.txt"),
                              image_size=16, device="cpu", quiet=True))
    pred = torch.tensor([7, 3])[logits[:, [7, 3]].argmax(1)]
    assert sub["top1_acc"] == pytest.approx((pred == truth).float().mean().item())
