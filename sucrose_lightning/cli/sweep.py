"""``sucrose run``: match the patterns, plan from the run histories, launch, summarise."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..config import Config
from .patterns import match_scenarios
from .render import Output
from .run import RunReport, check_command, plan_jobs, render_run

__all__ = ["sweep"]


def sweep(ws: Path, cfg: Config, args: argparse.Namespace) -> Output:
    """Run ``args.child`` for each scenario matching ``args.patterns``; the summary as output.

    Raises:
        UsageError: a pattern matches nothing, no command, a program not found, or the SLURM
            launcher without submitit.
    """
    names = match_scenarios(cfg, args.patterns)
    command = check_command(args.child)
    report = RunReport(plan_jobs(ws, cfg, names, args.rerun), launcher=args.launcher)
    if args.launcher == "slurm":
        from .slurm import SlurmOptions, run_slurm

        options = SlurmOptions(
            partition=args.partition,
            minutes=args.time,
            gpus=args.gpus,
            cpus=args.cpus,
            mem_gb=args.mem_gb,
            parallel=args.jobs,
            cluster=args.cluster,
        )
        run_slurm(ws, cfg, command, report, options)
    else:
        from .runner import LocalRunner

        LocalRunner(ws, cfg, command, args.jobs).run(report)
    return render_run(report, args.format)
