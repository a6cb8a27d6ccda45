"""Grids of training runs and their tables: `run_sweep(SweepConfig(...))` trains recipes x grid x seeds
(resumable), `write_table(run_dirs, out)` pools seeds into mean +- std (table.md, table.csv, curves.png)."""
from kmix.sweep.plan import PlannedRun, SweepConfig, plan_sweep
from kmix.sweep.runfolder import RunFolder, find_runs, read_run
from kmix.sweep.runner import run_sweep, sweep_status
from kmix.sweep.table import Table, TableConfig, build_table, write_table

__all__ = ["PlannedRun", "RunFolder", "SweepConfig", "Table", "TableConfig", "build_table", "find_runs", "plan_sweep", "read_run",
           "run_sweep", "sweep_status", "write_table"]
