"""A pre-registered campaign that every GPU window advances: plan file -> `kmix.sweep` run folders.

    python benchmarks/campaign.py benchmarks/plans/c10_preact18_200ep.yaml --budget-s 570 --out /tmp/camp [--jobs 2]
    python benchmarks/campaign.py benchmarks/plans/c10_preact18_200ep.yaml --dry-run --out /tmp/camp_dry   # CPU, <1 min

1. Plans every run (`kmix.sweep.plan_sweep`: recipe + the plan's `set` + one-value `vary` axes, one seed),
   in the plan's priority order (tier by tier, seed-major inside a tier), validating every config first.
2. Copies the finished runs of the committed records folder (the plan's `records`, or --records) into
   OUT/runs/<label>/seed<N>/ and skips them (`kmix.sweep.sweep_status` checks they hold the same settings).
3. Starts the next run in priority order only if margin x its estimated time fits the budget left; else it
   says so and starts nothing more. The estimate is the mean process time of earlier runs of the same method
   on the same GPU model and --jobs (their campaign.json), else the slowest such run of any method, else a
   WARM probe (the plan's probe method: `steps` timed steps after `steps` warm-up steps, --jobs at once).
4. Each run is its own process (one CUDA context; --jobs N side by side): `kmix.train.fit`, then on the
   final weights (last.pt) hessian.json (top eigenvalue, trace), fgsm.json (robust top-1), ood.json (max-softmax
   AUPR against the plan's OOD pack), and campaign.json (GPU, img/s, times). After each run: `kmix table` of
   everything so far plus campaign.md (analysis columns and the stop-rule reading), printed, and ONE archive
   (--archive, default $OUT/<name>.tar.gz, else OUT/<name>.tar.gz) of the new runs' records (never checkpoints),
   the tables and this window's log, laid out as <name>/...: `tar xzf ARCHIVE -C docs/results` files them.

Calls on one warm machine continue each other (same --out): a run cut off at the budget keeps its last
epoch's checkpoint, and the next call resumes it (its estimate then covers only the epochs left). With
--finish-later a call also starts the next run when it cannot finish before the budget (at least
the plan's finish_later_min_s left), so that one run can span two calls of the 10-minute limit. Each call's seconds on
a run are appended to its calls.jsonl; campaign.json sums them (process_s) and counts the calls.

If the plan compiles (`compile: true`) and the compiled probe fails, the probe is repeated without
compilation and the call trains uncompiled (the log says so): compilation changes speed and rounding, not
the protocol.

--dry-run: the same code path on the CPU at tiny size (the plan's `dry_run` section: a 300-image CIFAR-like
JPEG tarball, small_cnn, 2 epochs of 2 batches, a synthetic OOD set); records default to OUT/records.
"""
from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import math
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # kmix from this checkout, installed or not (the child processes too, below)
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
RECORD_FILES = ("config.yaml", "metrics.jsonl", "summary.json", "campaign.json", "calls.jsonl", "hessian.json",
                "fgsm.json", "ood.json")
T0 = time.monotonic()
LOG: list[str] = []


def say(msg: str) -> None:
    line = f"[campaign {time.monotonic() - T0:5.0f}s] {msg}"
    print(line, flush=True)
    LOG.append(line)


# --- the plan ----------------------------------------------------------------------------------------
def load_plan(path: Path, dry: bool) -> dict:
    plan = yaml.safe_load(path.read_text())
    if dry:
        d = plan["dry_run"]
        plan["set"] = {**plan["set"], **d.get("set", {})}
        plan["probe"] = {**plan["probe"], **d.get("probe", {})}
        plan["analyses"] = {k: {**v, **d.get("analyses", {}).get(k, {})} for k, v in plan["analyses"].items()}
        plan.update({k: v for k, v in d.items() if k not in ("set", "probe", "analyses")})  # budget_s, reserve_s
    return plan


def planned_runs(plan: dict, runs_dir: Path, overrides: dict) -> list[tuple[str, object, object]]:
    """(method name, SweepConfig, PlannedRun) in priority order; every config validated by plan_sweep."""
    from kmix.sweep import SweepConfig, plan_sweep

    out = []
    for tier in plan["tiers"]:
        for seed in plan["seeds"]:
            for m in tier:
                sc = SweepConfig(recipes=(m["recipe"],), overrides={**plan["set"], **overrides},
                                 grid={k: [v] for k, v in m.get("vary", {}).items()}, seeds=(seed,),
                                 out=str(runs_dir), table=False)
                [run] = plan_sweep(sc)
                out.append((m["name"], sc, run))
    return out


def finished(run) -> bool:
    from kmix.sweep import read_run

    if not (run.out / "summary.json").is_file():
        return False
    folder = read_run(run.out)
    return folder.finished and folder.summary.get("epochs") == run.config.epochs


# --- time estimates ------------------------------------------------------------------------------
def epochs_done(run) -> int:
    """Epochs a cut-off run of an earlier call has checkpointed in its folder (0 for a new run)."""
    metrics = run.out / "metrics.jsonl"
    return len(metrics.read_text().splitlines()) if metrics.is_file() and (run.out / "last.pt").is_file() else 0


def estimate(name: str, run, done: list[dict], gpu: str, jobs: int, probe: dict | None,
             resume_overhead_s: float = 60.0) -> tuple[float, str] | None:
    """(seconds, how) to finish `run`: the whole-run estimate, or for a run an earlier call cut off, its epochs
    left plus `resume_overhead_s` (start-up, compilation, analyses); None: a probe is needed."""
    full = whole_run_estimate(name, run, done, gpu, jobs, probe)
    have = epochs_done(run)
    if full is None or not have:
        return full
    left = max(run.config.epochs - have, 0) / run.config.epochs
    return (full[0] * left + resume_overhead_s,
            f"{have} of {run.config.epochs} epochs done in an earlier call: {left:.0%} of {full[1]}, "
            f"+{resume_overhead_s:g} s start-up")


def whole_run_estimate(name: str, run, done: list[dict], gpu: str, jobs: int,
                       probe: dict | None) -> tuple[float, str] | None:
    """(seconds, how it was estimated) from earlier runs' campaign.json, else from the probe; None: probe needed."""
    same = [r for r in done if r.get("gpu") == gpu and r.get("jobs") == jobs and r.get("epochs") == run.config.epochs
            and r.get("process_s")]
    mine = [r["process_s"] for r in same if r.get("method") == name]
    if mine:
        return sum(mine) / len(mine), f"mean of {len(mine)} earlier {name} run(s) on {gpu}, jobs {jobs}"
    if same:
        return (max(r["process_s"] for r in same),
                f"slowest of {len(same)} earlier run(s) (other methods) on {gpu}, jobs {jobs}")
    if probe is None:
        return None
    c = run.config
    steps = c.limit_train_batches or math.inf
    images = min(steps, probe["train_images"] // c.batch_size) * c.batch_size
    evals = c.epochs // c.eval_every + (c.epochs % c.eval_every != 0)
    secs = probe["process_s"] + c.epochs * images / probe["img_per_s"] + evals * probe["eval_s"]
    return secs, (f"warm probe ({probe['method']}, {probe['jobs']} at once): {probe['img_per_s']:,.0f} img/s, "
                  f"{probe['eval_s']:.1f} s per eval, {probe['process_s']:.0f} s start-up + probe + analyses")


def run_probe(plan: dict, runs: list, workdir: Path, jobs: int, spec_base: dict) -> dict:
    """`jobs` probe processes at once: 2 epochs of `steps` steps (the first warms up, and compiles), analyses
    timed too."""
    name, steps = plan["probe"]["method"], plan["probe"]["steps"]
    base = next(run for m, _, run in runs if m == name)
    procs = []
    for j in range(jobs):
        out = workdir / "probe" / f"p{j}"
        shutil.rmtree(out, ignore_errors=True)
        cfg = base.config.replace(out=str(out), resume=False, epochs=2, limit_train_batches=steps,
                                  schedule="constant", milestones=[], eval_every=2)
        procs.append((out, launch(cfg, name, spec_base, workdir / "logs" / f"probe{j}.log")))
    results = []
    for out, (proc, t0) in procs:
        if proc.wait() != 0:
            raise ProbeFailed(f"the probe failed; see {workdir / 'logs'}")
        last = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
        results.append({"img_per_s": last["img_per_s"], "eval_s": last["wall_s"] - last["train_s"],
                        "process_s": time.monotonic() - t0,
                        "train_images": json.loads((out / "summary.json").read_text())["train_images"]})
    probe = {"method": name, "jobs": jobs, "steps": steps, "img_per_s": min(r["img_per_s"] for r in results),
             "eval_s": max(r["eval_s"] for r in results), "process_s": max(r["process_s"] for r in results),
             "train_images": results[0]["train_images"], "each": results}
    (workdir / "probe.json").write_text(json.dumps(probe, indent=2) + "\n")
    return probe


class ProbeFailed(RuntimeError):
    """A probe process exited with an error (its log is under OUT/logs)."""


def probe_or_fall_back(plan: dict, runs: list, workdir: Path, jobs: int, spec_base: dict) -> tuple[dict, list]:
    """The warm probe; if it fails with `compile: true`, say so and probe (and train) uncompiled instead.
    Returns the probe and the runs, uncompiled if it fell back."""
    try:
        return run_probe(plan, runs, workdir, jobs, spec_base), runs
    except ProbeFailed as err:
        if not any(run.config.compile for _, _, run in runs):
            raise
        say(f"{err}: the compiled probe failed, so this call probes and trains without torch.compile")
        runs = [(m, sc, dataclasses.replace(run, config=run.config.replace(compile=False))) for m, sc, run in runs]
        return run_probe(plan, runs, workdir, jobs, spec_base), runs


# --- one run = one process -----------------------------------------------------------------------------
def launch(cfg, name: str, spec_base: dict, log_path: Path):
    spec = {**spec_base, "config": cfg.to_dict(), "method": name}
    log_path.parent.mkdir(parents=True, exist_ok=True)
    spec_path = log_path.with_suffix(".json")
    spec_path.write_text(json.dumps(spec, indent=1))
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "_child", str(spec_path)],
                                stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    return proc, time.monotonic()


def device_name(device: str) -> str:
    import torch

    dev = torch.device(device)
    return torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"


def child(spec_path: str) -> int:
    """Train one run (fit resumes or starts it), analyse its final weights, write campaign.json."""
    import torch

    from kmix.train import fit
    from kmix.train.config import TrainConfig

    spec = json.loads(Path(spec_path).read_text())
    cfg = TrainConfig.from_dict(spec["config"], source=spec_path)
    t0 = time.perf_counter()
    summary = fit(cfg)
    fit_s = time.perf_counter() - t0
    analyse(Path(cfg.out), cfg, spec["analyses"])
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout
    gpu = device_name(cfg.device)
    flops = train_flops_per_image(cfg)
    rate = summary.get("img_per_s")
    record = {"method": spec["method"], "plan": spec["plan"], "seed": cfg.seed, "epochs": cfg.epochs,
              "gpu": gpu, "jobs": spec["jobs"], "torch": torch.__version__, "cuda": torch.version.cuda,
              "compile": cfg.compile, "img_per_s": rate, "train_flops_per_image": flops,
              "train_tflop_per_s": rate * flops / 1e12 if rate else None, "bf16_peak_tflop_per_s": bf16_peak(gpu),
              "fit_s": fit_s, "analysis_s": time.perf_counter() - t0 - fit_s,
              "commit": commit.strip() or None, "finished_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    (Path(cfg.out) / "campaign.json").write_text(json.dumps(record, indent=2) + "\n")
    return 0


def _throughput_tools():
    spec = importlib.util.spec_from_file_location("bench_train_throughput", ROOT / "benchmarks" / "bench_train_throughput.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def train_flops_per_image(cfg) -> float:
    """Forward + backward FLOPs per training image of cfg's network (benchmarks/bench_train_throughput.py's count)."""
    from kmix.data.registry import build_dataset

    _, info = build_dataset(cfg.data, root=cfg.data_root, train=False, image_size=cfg.image_size)
    return _throughput_tools().flops_per_image(cfg, info)


def bf16_peak(gpu: str) -> float | None:
    return _throughput_tools().bf16_peak(gpu)


def analyse(run_dir: Path, cfg, spec: dict) -> None:
    """hessian.json, fgsm.json, ood.json on last.pt (fp32); a failing analysis writes {"error": ...}, the run stays."""
    import numpy as np
    import torch

    from kmix.analysis.attacks import fgsm
    from kmix.analysis.data import collect_logits, load_eval_data, make_loader, stack_dataset
    from kmix.analysis.hessian import LossOnData, hutchinson_trace, top_eigenpairs
    from kmix.analysis.models import load_analysis_model, resolve_device
    from kmix.analysis.ood import msp_anomaly_score, ood_metrics

    device = resolve_device(cfg.device)
    model = load_analysis_model(run_dir / "last.pt", device=device).model

    loaded: dict[int, object] = {}

    def test_images(n: int):  # a fixed subset of the test split (seed 0), loaded once per size
        if n not in loaded:
            loaded[n] = load_eval_data(cfg.data, root=cfg.data_root, limit=n, seed=0)[0]
        return loaded[n]

    def hessian(h: dict) -> dict:
        loss = LossOnData(model, stack_dataset(test_images(h["images"]), h["batch_size"]), device)
        base_loss, base_err = loss.evaluate()
        (top,), _ = top_eigenpairs(loss, k=1, iters=h["iters"])
        trace, stderr = hutchinson_trace(loss, samples=h["trace_samples"])
        return {"top_eigenvalue": top, "trace": trace, "trace_stderr": stderr, "images": loss.n, "split": "test",
                "loss": base_loss, "top1_err": base_err, "power_iters": h["iters"], "trace_samples": h["trace_samples"]}

    def robust(f: dict) -> dict:
        clean = adv = n = 0
        for x, y in make_loader(test_images(f["images"]), 256):
            x, y = x.to(device), torch.as_tensor(y).to(device)
            with torch.no_grad():
                clean += int((model(x).argmax(1) == y).sum())
            x_adv = fgsm(model, x, y, f["eps_255"] / 255)
            with torch.no_grad():
                adv += int((model(x_adv).argmax(1) == y).sum())
            n += len(y)
        return {"attack": "fgsm", "eps_255": f["eps_255"], "clean_top1": 100 * clean / n, "fgsm_top1": 100 * adv / n,
                "n": n, "split": "test"}

    def ood(o: dict) -> dict:
        pack = np.load(o["pack"])
        x_ood = torch.from_numpy(pack["images"]).permute(0, 3, 1, 2).float().div(255)
        in_logits, _ = collect_logits(model, make_loader(test_images(o["in_images"]), 256), device)
        with torch.no_grad():
            ood_logits = torch.cat([model(b.to(device)).float().cpu() for b in x_ood.split(256)])
        return {**ood_metrics(msp_anomaly_score(in_logits).numpy(), msp_anomaly_score(ood_logits).numpy()),
                "score": "-max softmax", "ood_pack": str(o["pack"]), "ood_classes": sorted(set(pack["wnids"].tolist()))}

    for name, fn in (("hessian", hessian), ("fgsm", robust), ("ood", ood)):
        t0 = time.perf_counter()
        try:
            result = fn(spec[name])
        except Exception as err:  # the accuracy run must survive a failing analysis
            result = {"error": f"{type(err).__name__}: {err}"}
        result["seconds"] = time.perf_counter() - t0
        (run_dir / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")


# --- tables and the archive -------------------------------------------------------------------------
EVIDENCE = (("hessian", "top_eigenvalue", "λmax (Hessian)"), ("hessian", "trace", "Hessian trace"),
            ("fgsm", "fgsm_top1", "FGSM 8/255 top-1 (%)"), ("ood", "aupr", "OOD AUPR (MSP)"))


def tables(runs: list, workdir: Path, plan: dict) -> str | None:
    """`kmix table` of every finished run (OUT/table/) plus campaign.md: analysis columns and the reading."""
    import numpy as np

    from kmix.sweep import write_table
    from kmix.sweep.table import method_label

    done = [run.out for _, _, run in runs if finished(run)]
    if not done:
        return None
    table = write_table(done, workdir / "table")
    names = {run.out.parent.name: m for m, _, run in runs}

    def pm(values: list) -> str:
        v = [x for x in values if isinstance(x, (int, float))]
        if not v:
            return "—"
        return f"{np.mean(v):.4g}" + (f" ± {np.std(v, ddof=1):.2g}" if len(v) > 1 else "")

    heads = ["method", "mix", "n", "seeds", "final top-1 err (%)"] + [h for _, _, h in EVIDENCE]
    lines = ["| " + " | ".join(heads) + " |", "|" + "---|" * 2 + "---:|" * (len(heads) - 2)]
    by_method = {}
    for group, row in zip(table.groups, table.rows):
        name = names.get(group.runs[0].path.parent.name, "?")
        errs = {r.config["seed"]: r.summary["top1_err"] for r in group.runs}
        by_method[name] = errs
        cells = [name, method_label(group.key), str(row["n"]), row["seeds"].replace(";", ", "), pm(list(errs.values()))]
        for file, key, _ in EVIDENCE:
            cells.append(pm([_json(r.path / f"{file}.json").get(key) for r in group.runs]))
        lines.append("| " + " | ".join(cells) + " |")
    ref, need = plan["reference"], plan["min_seeds"]
    reading = [f"Reading (pre-registered: a method is read only with >= {need} seeds; difference to {ref}, "
               f"per seed, final test top-1 error in points):"]
    for name, errs in by_method.items():
        common = sorted(set(errs) & set(by_method.get(ref, {})))
        if name == ref:
            continue
        if len(errs) < need or len(common) < need:
            reading.append(f"- {name}: not read ({len(errs)} seed(s) of {need}; {len(common)} shared with {ref})")
            continue
        diff = [errs[s] - by_method[ref][s] for s in common]
        reading.append(f"- {name} - {ref}: mean difference {np.mean(diff):+.2f} points, "
                       f"std {np.std(diff, ddof=1):.2f}, "
                       f"n {len(diff)} (seeds {', '.join(map(str, common))})")
    text = "\n".join(lines + [""] + reading) + "\n"
    (workdir / "table" / "campaign.md").write_text(text)
    return (workdir / "table" / "table.md").read_text() + "\n" + text


def admit(needed_s: float, left_s: float, finish_later: bool, min_left_s: float) -> tuple[bool, bool]:
    """(start the run, knowing it will be cut at the budget): a run starts when it fits, or with --finish-later
    when at least `min_left_s` is left (the next call on the warm machine resumes it)."""
    if needed_s <= left_s:
        return True, False
    return (True, True) if finish_later and left_s >= min_left_s else (False, False)


def log_call(out: Path, seconds: float, finished_run: bool) -> list[dict]:
    """Append this call's process seconds on the run to OUT/calls.jsonl; return every call's record so far."""
    path = out / "calls.jsonl"
    if out.is_dir():
        with open(path, "a") as f:
            f.write(json.dumps({"process_s": seconds, "finished": finished_run,
                                "utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}) + "\n")
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


def _json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def pack(archive: Path, name: str, new: list, workdir: Path, stamp: str) -> None:
    """ONE archive: the new runs' records, the tables and this window's log, under <name>/; written atomically."""
    archive.parent.mkdir(parents=True, exist_ok=True)
    (workdir / "campaign.log").write_text("\n".join(LOG) + "\n")
    tmp = archive.with_name(archive.name + ".tmp")
    with tarfile.open(tmp, "w:gz") as tar:
        for run in new:
            where = f"{name}/{run.out.parent.name}/{run.out.name}"
            for f in RECORD_FILES:
                if (run.out / f).is_file():
                    tar.add(run.out / f, arcname=f"{where}/{f}")
            log = workdir / "logs" / f"{run.out.parent.name}-{run.out.name}.log"
            if log.is_file():
                tar.add(log, arcname=f"{where}/run.log")
        for f in ("table.md", "table.csv", "curves.png", "campaign.md"):
            if (workdir / "table" / f).is_file():
                tar.add(workdir / "table" / f, arcname=f"{name}/{f}")
        tar.add(workdir / "campaign.log", arcname=f"{name}/windows/{stamp}.log")
        if (workdir / "probe.json").is_file():
            tar.add(workdir / "probe.json", arcname=f"{name}/windows/{stamp}-probe.json")
    os.replace(tmp, archive)


# --- the campaign -----------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_child"]:
        return child(argv[1])
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("plan", help="plan YAML, e.g. benchmarks/plans/c10_preact18_200ep.yaml")
    p.add_argument("--out", required=True, help="work folder: runs/, logs/, table/ (checkpoints stay here)")
    p.add_argument("--budget-s", type=float, help="seconds for this whole call (dry run: the plan's dry_run budget_s)")
    p.add_argument("--records", help="committed records folder (default: the plan's `records`; dry run: OUT/records)")
    p.add_argument("--data-root", help="CIFAR-10 tarball/folder (default: the plan's data_root)")
    p.add_argument("--jobs", type=int, default=1, help="runs side by side on one GPU, one process each")
    p.add_argument("--finish-later", action="store_true",
                   help="also start the next run when it cannot finish in this call (with >= the plan's "
                        "finish_later_min_s left); "
                        "it is cut at the budget and the next call with the same --out on the warm machine resumes it")
    p.add_argument("--archive", help="the one archive (default $OUT/<name>.tar.gz, else OUT/<name>.tar.gz)")
    p.add_argument("--dry-run", action="store_true", help="the same code path on the CPU at tiny size")
    args = p.parse_args(argv)
    plan_path, workdir = Path(args.plan).resolve(), Path(args.out).resolve()
    records = Path(args.records).resolve() if args.records else None
    archive = Path(args.archive).resolve() if args.archive else None
    data_root = str(Path(args.data_root).resolve()) if args.data_root else None
    os.chdir(ROOT)  # the plan's paths (recipes, data_root, the OOD pack) are relative to the checkout
    plan = load_plan(plan_path, args.dry_run)
    name, jobs = plan["name"], args.jobs
    budget = args.budget_s if args.budget_s is not None else plan.get("budget_s")
    if budget is None or jobs < 1:
        p.error("give --budget-s SECONDS (and --jobs >= 1)")
    deadline = T0 + budget - plan["reserve_s"]  # the reserve is for the last tables and archive
    workdir.mkdir(parents=True, exist_ok=True)
    if args.dry_run:
        os.environ.setdefault("KMIX_CACHE_DIR", str(workdir / "cache"))
        tiny = tiny_data(workdir, make_cifar=data_root is None)
        data_root = data_root or str(tiny / "cifar10-tiny.tar.gz")
        plan["analyses"]["ood"]["pack"] = str(tiny / "ood.npz")
        records = records or workdir / "records"
    else:
        records = records or ROOT / plan["records"]
        if data_root == str(Path(plan["data_root"]).resolve()):
            data_root = plan["data_root"]  # the plan's spelling: config.yaml's data_root is part of a table row's key
        elif data_root:
            say(f"warning: --data-root {data_root} is not the plan's {plan['data_root']}: kmix table will not pool "
                "these runs with the others (data_root is part of a row's key)")
        data_root = data_root or plan["data_root"]
        plan["set"].setdefault("threads", max(1, (os.cpu_count() or 1) // jobs))
        import torch

        if str(plan["set"].get("device", "")).startswith("cuda") and not torch.cuda.is_available():
            p.error("no CUDA GPU visible to torch; --dry-run is the CPU check")
    if not Path(data_root).exists():
        p.error(f"CIFAR-10 not found at {data_root}: cp ../shared/data/cifar10-jpg.tar.gz .gpu-data/, "
                "carry .gpu-data")
    if not Path(plan["analyses"]["ood"]["pack"]).exists():
        p.error(f"OOD pack not found: {plan['analyses']['ood']['pack']} (python benchmarks/make_ood_pack.py)")
    out_env = os.environ.get("OUT") if not args.dry_run else None
    archive = archive or Path(out_env or workdir) / f"{name}.tar.gz"
    runs = planned_runs(plan, workdir / "runs", {"data_root": data_root})
    say(f"plan {name}: {len(runs)} runs; data {data_root}; budget {budget:.0f} s; jobs {jobs}; records {records}; "
        f"archive {archive}" + (" (DRY RUN: CPU, tiny)" if args.dry_run else ""))

    from kmix.sweep import sweep_status

    copied = set()
    for _, sc, run in runs:  # (a) finished runs from the records folder, validated by the sweep's own check
        src = records / run.out.parent.name / run.out.name
        if not finished(run) and (src / "summary.json").is_file():
            shutil.rmtree(run.out, ignore_errors=True)
            shutil.copytree(src, run.out)
            copied.add(run.out)
        sweep_status(sc)
    pending = []
    for m, _, run in runs:
        if finished(run):
            say(f"finished earlier, skipped: {run.out.parent.name} seed {run.config.seed}"
                + (" (from the records)" if run.out in copied else ""))
        else:
            pending.append((m, run))
    say(f"{len(runs) - len(pending)} finished, {len(pending)} to run, in this order: "
        + ", ".join(f"{m}/s{r.config.seed}" for m, r in pending))

    t = time.monotonic()  # decode the data into the uint8 cache once, before several processes want it
    from kmix.data.registry import build_dataset
    for train in (True, False):
        build_dataset(runs[0][2].config.data, root=data_root, train=train)
    say(f"data ready in the cache in {time.monotonic() - t:.1f} s")
    gpu = device_name(runs[0][2].config.device)
    spec_base = {"plan": name, "jobs": jobs, "analyses": plan["analyses"]}
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    probe, running, new, stop = None, {}, [], None

    def done_records() -> list[dict]:
        return [_json(r.out / "campaign.json") for _, _, r in runs if finished(r)]

    while True:
        while stop is None and pending and len(running) < jobs:  # (b) the next run, if it fits
            m, run = pending[0]
            est = estimate(m, run, done_records(), gpu, jobs, probe, plan["resume_overhead_s"])
            if est is None and not running:
                say(f"no earlier run on {gpu} with jobs {jobs}: warm probe ({plan['probe']['method']}, "
                    f"{plan['probe']['steps']} steps after {plan['probe']['steps']} warm-up steps, {jobs} at once)")
                probe, runs = probe_or_fall_back(plan, runs, workdir, jobs, spec_base)
                pending = [(m2, r2) for m2, _, r2 in runs if any(r2.out == r.out for _, r in pending)]
                m, run = pending[0]
                est = estimate(m, run, done_records(), gpu, jobs, probe, plan["resume_overhead_s"])
            if est is None:
                break
            secs, how = est[0] * plan["margin"], est[1]
            left = deadline - time.monotonic()
            start, cut = admit(secs, left, args.finish_later, plan["finish_later_min_s"])
            if not start:
                stop = (f"not started: {m} seed {run.config.seed} needs ~{secs:.0f} s ({plan['margin']} x {how}), "
                        f"{left:.0f} s left in the budget; {len(pending)} run(s) left in the plan")
                say(stop)
                break
            if cut:
                stop = f"{m} seed {run.config.seed} started to finish in a later call (--finish-later)"
                say(f"--finish-later: {m} seed {run.config.seed} needs ~{secs:.0f} s, {left:.0f} s left: started "
                    "anyway; it is cut at the budget and the next call with the same --out resumes it")
            log = workdir / "logs" / f"{run.out.parent.name}-{run.out.name}.log"
            running[run.out] = (m, run, *launch(run.config, m, spec_base, log))
            pending.pop(0)
            say(f"started {m} seed {run.config.seed}: ~{secs:.0f} s ({plan['margin']} x {how}); {left:.0f} s left")
        if not running:
            break
        time.sleep(0.5)
        for out, (m, run, proc, t0) in list(running.items()):
            if proc.poll() is None:
                if time.monotonic() > deadline:
                    proc.kill()
                    proc.wait()
                    del running[out]
                    log_call(out, time.monotonic() - t0, finished_run=False)
                    stop = stop or "budget spent"
                    say(f"STOPPED at the budget: {m} seed {run.config.seed} after {epochs_done(run)} of "
                        f"{run.config.epochs} epochs; the next call with --out {workdir} on this machine resumes it "
                        "(a fresh machine starts it again)")
                continue
            del running[out]
            wall = time.monotonic() - t0
            calls = log_call(out, wall, finished_run=proc.returncode == 0 and finished(run))
            if proc.returncode != 0 or not finished(run):
                tail = (workdir / "logs" / f"{out.parent.name}-{out.name}.log").read_text()[-1500:]
                say(f"FAILED: {m} seed {run.config.seed} (exit {proc.returncode}) after {wall:.0f} s:\n{tail}")
                continue
            record = {**_json(out / "campaign.json"), "process_s": sum(c["process_s"] for c in calls),
                      "calls": len(calls)}
            (out / "campaign.json").write_text(json.dumps(record, indent=2) + "\n")
            new.append(run)
            summary = _json(out / "summary.json")
            say(f"finished {m} seed {run.config.seed} in {wall:.0f} s: test top-1 err {summary.get('top1_err'):.2f}%, "
                f"{summary.get('img_per_s') or 0:,.0f} img/s")
            say("tables so far:\n" + (tables(runs, workdir, plan) or "(none)"))
            pack(archive, name, new, workdir, stamp)  # (d) after every run: one archive of everything new
            say(f"archive: {archive} ({len(new)} new run(s))")
    left = [f"{m}/s{r.config.seed}" for m, r in pending]
    say(f"done: {len(new)} run(s) trained this call, {len(runs) - len(pending) - len(new)} earlier; "
        f"not run: {', '.join(left) or 'none'}" + (f" ({stop})" if stop else ""))
    tables(runs, workdir, plan)
    pack(archive, name, new, workdir, stamp)
    print(f"archive: {archive}")
    return 0


def tiny_data(workdir: Path, make_cifar: bool) -> Path:
    """Dry run: DIR/cifar10-tiny.tar.gz (300 CIFAR-like JPEGs, repro_support's layout) and a synthetic DIR/ood.npz."""
    import numpy as np

    folder = workdir / "tiny"
    folder.mkdir(parents=True, exist_ok=True)
    if make_cifar and not (folder / "cifar10-tiny.tar.gz").is_file():
        spec = importlib.util.spec_from_file_location("repro_support", ROOT / "benchmarks" / "repro_support.py")
        support = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(support)
        support.tiny_cifar10(folder, train_per_class=30, test_per_class=4)
    rng = np.random.default_rng(0)
    np.savez_compressed(folder / "ood.npz", images=rng.integers(0, 256, (24, 32, 32, 3), dtype=np.uint8),
                        wnids=np.array(["synthetic"] * 24))
    return folder


if __name__ == "__main__":
    sys.exit(main())
