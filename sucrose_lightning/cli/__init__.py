"""The ``sucrose`` command: see, compare, check, plot, rename and prune a workspace's scenarios.

Subcommands (``sucrose -h`` and ``sucrose SUBCOMMAND -h`` for details)::

    sucrose ls [--size] [PATTERN ...]   tree of scenarios: epochs done, checkpoints, newest, status
    sucrose show SCENARIO [--prefix P]  merged config: value, origin domain, overridden values
    sucrose diff A B                    keys that differ, keys only in A, keys only in B
    sucrose check [--verify]            config problems, unreadable checkpoints, leftovers
    sucrose plot A [B ...] --tag TAG    one PNG comparing a TensorBoard scalar across scenarios
    sucrose scalars A [B ...] --tag TAG the same data as CSV or JSON
    sucrose prune SCENARIO --keep K     delete all but the newest K checkpoints (with --yes)
    sucrose mv OLD NEW [--dry-run]      rename a scenario: config key, folders, file names, records
    sucrose new NAME [--set K=V ...]    add a domain to config.yaml, keeping every line of the file
    sucrose run [-j N] PATTERN... -- COMMAND
                                        run COMMAND per scenario; finished ones skipped, others resumed

Exit codes: 0 fine, 1 a problem was found (``check``), the config file is broken or there was
nothing to plot, 2 a usage error (unknown scenario, bad option, missing workspace, missing
optional dependency). Errors are one clear message on stderr, never a traceback.

``ls``, ``show``, ``diff`` and ``check`` (without ``--verify``) import neither torch, lightning,
tensorboard nor matplotlib, so they start in a fraction of a second. Only ``mv`` imports
torch (to rewrite the records inside checkpoints): ``check --verify`` CRC-checks the zip
archives with :mod:`zipfile`, and ``check`` reads the records from their pickles alone.

Each subcommand has a module (:mod:`.ls`, :mod:`.show`, :mod:`.diff`, :mod:`.check`,
:mod:`.prune`, :mod:`.mv`, :mod:`.logs`) with a function that computes plain data (``ls_report``,
``check_report``, ``prune``, ...) and one that renders it (``render_ls``, ...) into an
:class:`~.render.Output`; :func:`main` parses, computes, renders and prints.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
from collections.abc import Sequence
from typing import Any

from ..errors import ConfigError, SucroseError
from .common import PROG, UsageError, error_line, load_workspace, require_scenario, workspace_folder
from .parser import build_parser
from .render import Output

# Each command's module is imported when that command runs: ``sucrose ls`` does not pay for
# the code of ``plot`` or ``mv`` (a fresh process of ``ls`` is part of the P10 benchmark).
_LAZY = {"PLOT_INSTALL_HINT": "logs", "_default_png": "logs", "plot_figure": "logs"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["PLOT_INSTALL_HINT", "UsageError", "_default_png", "build_parser", "main", "plot_figure"]


def run_command(args: argparse.Namespace) -> Output:
    """Compute what ``args`` asks for, then render it (nothing is printed yet).

    Raises:
        UsageError: the command cannot run as asked.
        ConfigError: ``config.yaml`` is broken (``check`` reports it instead).
    """
    command, fmt = args.command, args.format
    if command == "check":
        from .check import check_report, render_check

        return render_check(check_report(workspace_folder(args.workspace), args.verify, args.target), fmt)
    if command == "mv":
        from .mv import move, render_mv

        ws, cfg = load_workspace(args.workspace)
        if args.old in cfg.grids:
            raise UsageError(
                f"scenario {args.old!r} is made by the grid of {cfg.grids[args.old]!r} in {cfg.path.name}, "
                "not a key of the file: change that grid's values to rename it"
            )
        return render_mv(move(ws, args.old, args.new, dry_run=args.dry_run, cfg=cfg), fmt)
    if command in ("plot", "scalars"):
        from .logs import PLOT_INSTALL_HINT, plot_available
    if command == "plot" and not args.list_tags and not plot_available():
        out = Output(code=2)
        out.err(f"{PROG}: {PLOT_INSTALL_HINT}")
        return out
    if command == "new":
        from .new import new_report, render_new

        ws = workspace_folder(args.workspace)
        return render_new(new_report(ws, args.name, args.sets, args.new_key, args.dry_run), fmt)
    ws, cfg = load_workspace(args.workspace)
    if command == "run":
        from .sweep import sweep

        return sweep(ws, cfg, args)
    if command == "ls":
        from .ls import ls_report, render_ls

        if not args.patterns:
            return render_ls(ls_report(ws, cfg, sizes=args.size), fmt)
        from .patterns import match_scenarios, pattern_regex

        regexes = [pattern_regex(p) for p in args.patterns]
        chosen = match_scenarios(cfg, args.patterns)
        listed = ls_report(ws, cfg, chosen, args.size, lambda o: any(r.fullmatch(o) for r in regexes))
        return render_ls(listed, fmt)
    if command == "show":
        from .show import render_show, show_report

        require_scenario(cfg, args.scenario)
        return render_show(show_report(cfg, args.scenario, args.prefix), fmt, args.origin)
    if command == "diff":
        from .diff import diff_report, render_diff

        require_scenario(cfg, args.a)
        require_scenario(cfg, args.b)
        return render_diff(diff_report(cfg, args.a, args.b), fmt)
    if command == "prune":
        from ..inventory import store_of
        from .prune import prune, render_prune

        require_scenario(cfg, args.scenario)
        store = store_of(ws, args.scenario, cfg.settings)
        return render_prune(prune(store, args.keep, yes=args.yes, force=args.force), fmt)
    # plot and scalars
    from .logs import render_plot, render_scalars, render_tags, scalars_report, write_plot
    from .patterns import match_scenarios

    names = match_scenarios(cfg, args.scenarios)
    report = scalars_report(ws, cfg, names, None if args.list_tags else args.tag, args.smooth)
    if args.list_tags:
        return render_tags(report, "json" if fmt == "json" else "table")
    if command == "scalars":
        return render_scalars(report, fmt)
    return render_plot(write_plot(report, args.output, args.logy), fmt)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``sucrose`` command; returns the exit code.

    Args:
        argv: the arguments (default: ``sys.argv[1:]``), e.g.
            ``["-w", "path/to/workspace", "show", "base/case1", "--format", "yaml"]``.

    Returns:
        0 fine, 1 a problem found, 2 a usage error.

    Examples:
        >>> import contextlib, io
        >>> with contextlib.redirect_stdout(io.StringIO()) as stdout:
        ...     code = main(["--version"])
        >>> code, stdout.getvalue().startswith("sucrose ")
        (0, True)
    """
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    child: list[str] = []
    if "--" in argv:  # `sucrose run PATTERN... -- COMMAND`: the command is not sucrose's to parse
        cut = argv.index("--")
        head = argv[:cut]
        with contextlib.redirect_stderr(io.StringIO()):
            try:
                is_run = parser.parse_known_args(head)[0].command == "run"
            except SystemExit:
                is_run = False
        if is_run:
            argv, child = head, argv[cut + 1 :]
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # argparse: usage errors exit 2, -h exits 0
        return int(stop.code or 0)
    if args.version:
        from .. import __version__

        print(f"{PROG} {__version__}")
        return 0
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    args.child = child
    if args.command in ("plot", "scalars") and not args.list_tags and not args.tag:
        print(
            f"{PROG} {args.command}: error: --tag is required (or --list-tags to see them)", file=sys.stderr
        )
        return 2
    try:
        return run_command(args).emit()
    except UsageError as err:
        print(error_line(err), file=sys.stderr)
        return 2
    except ConfigError as err:
        print(f"{error_line(err)}\n(run 'sucrose check' for every problem of the workspace)", file=sys.stderr)
        return 1
    except SucroseError as err:
        print(error_line(err), file=sys.stderr)
        return 1
    except BrokenPipeError:  # e.g. `sucrose ls | head`
        with contextlib.suppress(OSError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
