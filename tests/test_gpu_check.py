"""benchmarks/gpu_check.sh works before a GPU's minutes are spent on it: the dry run (CPU, tiny sizes)
writes a report with every section ok; a failing step, or a spent time budget, still leaves every
section in the report; what comes back fits the device tool's limits (at most 8 plain files)."""
from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"
STEPS = {1: "CUDA tests", 2: "mixing cost", 3: "scoring vs plain inference", 4: "training throughput"}
LOGS = ["step1_cuda_tests.log", "step2_bench_mix.log", "step3_bench_score.log", "step4_bench_train_throughput.log"]


def _check(out: Path, *args: str, python: str = sys.executable, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHON": python}
    env.pop("OUT", None)
    return subprocess.run(["bash", str(SCRIPT), "--out", str(out), *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


def _summary(report: str) -> dict[int, list[str]]:
    """Step number -> the cells of its row in the report's summary table."""
    rows = {}
    for line in report.splitlines():
        m = re.match(r"\| (\d)\. ", line)
        if m:
            rows[int(m.group(1))] = [c.strip() for c in line.strip().strip("|").split(" | ")]
    return rows


def _assert_every_section(report: str) -> None:
    for num, title in STEPS.items():
        assert re.search(rf"^## {num}\. {title}", report, re.M), f"section {num} ({title}) missing"
        assert re.search(rf"^## {num}\. .*\n\n- command: `", report, re.M), f"section {num} has no command"


@pytest.mark.slow
def test_dry_run_reports_every_step_ok(tmp_path):
    out = tmp_path / "report"
    done = _check(out, "--dry-run")
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    report = (out / "gpu_report.md").read_text()
    assert report.startswith("# kmix GPU check") and "| mode | dry run" in report
    for key in ("| torch (its CUDA, cuDNN) | 2.", "| torch sees CUDA |", "| kmix commit |", "| total time |"):
        assert key in report, key
    _assert_every_section(report)
    rows = _summary(report)
    assert sorted(rows) == [1, 2, 3, 4]
    for num, cells in rows.items():
        if num == 4 and not (ROOT / "benchmarks" / "bench_train_throughput.py").exists():
            assert cells[1].startswith("skipped (benchmarks/bench_train_throughput.py not present"), cells
            continue
        assert cells[1] == "ok" and cells[2] == "0", cells
        assert re.search(rf"^## {num}\. .*\n\n- command: `.*`\n- status: \*\*ok\*\*, exit code 0", report, re.M)
    assert "skipped" in rows[1][5]  # without a GPU the CUDA tests skip (and are counted)
    assert rows[2][5].startswith("target: kmix DCutMix K=5 <= 2x a batch clone: 8x3x16x16")
    assert rows[3][5].startswith("target: scoring >= 0.95x plain inference")
    assert "| kmix DCutMix K=5 |" in report  # bench_mix's table is pasted as markdown
    files = sorted(p.name for p in out.iterdir())
    assert files == sorted(["env.log", "gpu_report.md", *LOGS]) and len(files) <= 8  # the device tool returns 8
    assert all(p.is_file() and stat.S_ISREG(p.stat().st_mode) for p in out.iterdir())
    assert "== gpu_check summary" in done.stdout  # the summary ends the output (what a run's tail shows)


def test_failing_steps_each_keep_their_section(tmp_path):
    """A python that fails every step (it still answers the environment probe): all four steps run,
    each reports its own failure, and the script exits 1."""
    fake = tmp_path / "python"
    fake.write_text(f'#!/usr/bin/env bash\nif [ "$1" = "-" ]; then exec "{sys.executable}" "$@"; fi\n'
                    'echo "planted failure: $*" >&2\nexit 7\n')
    fake.chmod(0o755)
    out = tmp_path / "report"
    done = _check(out, "--dry-run", python=str(fake), timeout=120)
    assert done.returncode == 1, done.stdout[-3000:]
    report = (out / "gpu_report.md").read_text()
    _assert_every_section(report)
    rows = _summary(report)
    for num in (1, 2, 3):
        assert rows[num][1] == "FAILED (exit 7)", rows[num]
    assert rows[4][1] in ("FAILED (exit 7)", "skipped (benchmarks/bench_train_throughput.py not present)")
    assert report.count("planted failure:") >= 3  # each section shows its own output


def test_spent_budget_skips_steps_but_writes_their_sections(tmp_path):
    out = tmp_path / "report"
    done = _check(out, "--dry-run", "--budget", "5", timeout=120)
    assert done.returncode == 0, done.stdout[-3000:]
    report = (out / "gpu_report.md").read_text()
    _assert_every_section(report)
    rows = _summary(report)
    for num in (1, 2, 3):
        assert rows[num][1] == "skipped (time budget of 5 s spent)", rows[num]


def test_bad_arguments_are_refused():
    done = subprocess.run(["bash", str(SCRIPT), "--budget", "soon"], capture_output=True, text=True, timeout=30)
    assert done.returncode == 2 and "--budget must be whole seconds" in done.stderr
    done = subprocess.run(["bash", str(SCRIPT), "--frobnicate"], capture_output=True, text=True, timeout=30)
    assert done.returncode == 2 and "unknown argument '--frobnicate'" in done.stderr
