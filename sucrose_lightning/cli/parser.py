"""The ``sucrose`` argument parser and its argument types."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from .common import PROG

__all__ = ["build_parser", "positive_int", "smoothing"]

_WORKSPACE_HELP = "the folder holding config.yaml (default: the current folder)"


def positive_int(text: str) -> int:
    """A whole number of at least 1 (``prune --keep``).

    Examples:
        >>> positive_int("3")
        3
        >>> positive_int("0")
        Traceback (most recent call last):
        ...
        argparse.ArgumentTypeError: must be at least 1, not 0 (keep the newest checkpoint)
    """
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, not {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value} (keep the newest checkpoint)")
    return value


def smoothing(text: str) -> float:
    """An exponential moving average weight in ``[0, 1)`` (``--smooth``).

    Examples:
        >>> smoothing("0.6")
        0.6
        >>> smoothing("1")
        Traceback (most recent call last):
        ...
        argparse.ArgumentTypeError: must be at least 0 and below 1, not 1.0 (0.6 is TensorBoard's default)
    """
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), not {text!r}") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(
            f"must be at least 0 and below 1, not {value} (0.6 is TensorBoard's default)"
        )
    return value


def build_parser() -> argparse.ArgumentParser:
    """The ``sucrose`` argument parser; ``args.command`` names the subcommand (``None`` if none).

    Examples:
        >>> args = build_parser().parse_args(["show", "base", "--format", "yaml"])
        >>> args.command, args.scenario, args.format
        ('show', 'base', 'yaml')
    """
    workspace = argparse.ArgumentParser(add_help=False)
    workspace.add_argument("-w", "--workspace", default=argparse.SUPPRESS, help=_WORKSPACE_HELP)
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="See, compare, check, plot, rename and prune the scenarios of a sucrose workspace.",
        epilog="exit codes: 0 fine, 1 problem found, 2 usage error. "
        "'sucrose SUBCOMMAND -h' shows each subcommand's options.",
    )
    parser.add_argument("-w", "--workspace", default=".", help=_WORKSPACE_HELP)
    parser.add_argument("-V", "--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="SUBCOMMAND")

    def add(name: str, help_: str, formats: Sequence[str]) -> argparse.ArgumentParser:
        p = sub.add_parser(name, parents=[workspace], help=help_, description=help_)
        p.add_argument(
            "--format", choices=formats, default=formats[0], help=f"output format (default: {formats[0]})"
        )
        return p

    p = add(
        "ls",
        "tree of scenarios: epochs done, checkpoints, newest, logs, status; and orphans",
        ["table", "json"],
    )
    p.add_argument(
        "--size",
        action="store_true",
        help="add up each scenario's checkpoint sizes (SIZE column; one stat per file)",
    )
    p.add_argument(
        "patterns", nargs="*", metavar="PATTERN", help="only scenarios matching these (e.g. 'base/lr/*')"
    )

    p = add(
        "show",
        "a scenario's merged config: each value, the domain it came from, the ancestor values it overrides",
        ["table", "yaml", "json"],
    )
    p.add_argument("scenario", help="scenario (domain) name, e.g. base/case1")
    p.add_argument("--prefix", help="only keys under this dotted prefix, e.g. model")
    p.add_argument(
        "--origin",
        action="store_true",
        help="show the inheritance chain (and, in YAML, a comment per key saying where it came from)",
    )

    p = add("diff", "keys whose values differ between two scenarios, keys only in one", ["table", "json"])
    p.add_argument("a", help="first scenario")
    p.add_argument("b", help="second scenario")

    p = add(
        "check",
        "every problem at once: config.yaml, unreadable or partial checkpoints, "
        "leftover temporary files, folders with no domain; exit 1 if any",
        ["text", "json"],
    )
    p.add_argument("--verify", action="store_true", help="also read every byte and check CRCs (slow)")
    p.add_argument(
        "--target",
        action="append",
        default=[],
        metavar="PREFIX=MODULE.CALLABLE",
        help="check every scenario's PREFIX.* values against the callable's type annotations, "
        "e.g. --target model=mypkg.MyNet (repeatable; imports the module)",
    )

    for name, help_, formats in (
        ("plot", "draw a TensorBoard scalar of one or more scenarios into one PNG", ["text", "json"]),
        ("scalars", "print a TensorBoard scalar of one or more scenarios", ["csv", "json"]),
    ):
        p = add(name, help_, formats)
        p.add_argument(
            "scenarios", nargs="+", metavar="SCENARIO", help="scenario names or patterns (e.g. 'base/lr/*')"
        )
        p.add_argument("--tag", help="the scalar's tag, e.g. train/loss")
        p.add_argument(
            "--smooth",
            type=smoothing,
            default=0.0,
            metavar="W",
            help="exponential moving average weight in [0, 1), like TensorBoard's slider (default: 0)",
        )
        p.add_argument("--list-tags", action="store_true", help="list the scalar tags of each scenario")
        if name == "plot":
            p.add_argument(
                "-o", "--output", help="PNG file to write (default: <tag>.png in the current folder)"
            )
            p.add_argument("--logy", action="store_true", help="a logarithmic y axis")

    p = add(
        "mv",
        "rename a scenario: its key in config.yaml, its checkpoint and logs folders, its file "
        "names and the records inside its checkpoints (refused while it is being trained)",
        ["text", "json"],
    )
    p.add_argument("old", help="the scenario's name now")
    p.add_argument("new", help="its new name (not a domain yet, no folders)")
    p.add_argument("--dry-run", action="store_true", help="only print what would change")

    p = add(
        "new",
        "add a domain (a named variant) to config.yaml, keeping every comment and line of the file",
        ["text", "json"],
    )
    p.add_argument("name", help="the new domain, e.g. base/wide (it inherits from base)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        dest="sets",
        help="a key and its value, read as YAML (repeatable), e.g. --set optim.lr=0.01",
    )
    p.add_argument("--new-key", action="store_true", help="allow keys that no ancestor sets")
    p.add_argument("--dry-run", action="store_true", help="only print the lines it would add")

    p = add(
        "run",
        "run a command once per matching scenario, skipping finished ones and resuming the others "
        "(write the command after '--'; {scenario} in it is replaced)",
        ["table", "json"],
    )
    p.usage = "%(prog)s [options] PATTERN [PATTERN ...] -- COMMAND [ARG ...]"
    p.epilog = (
        "example: sucrose run -j 2 'base/lr/*' -- python train.py {scenario}  "
        "(the child also gets SUCROSE_SCENARIO and SUCROSE_WORKSPACE)"
    )
    p.add_argument("patterns", nargs="+", metavar="PATTERN", help="scenarios or patterns, e.g. 'base/lr/*'")
    p.add_argument("-j", "--jobs", type=positive_int, default=1, metavar="N", help="at most N at a time")
    p.add_argument("--rerun", action="store_true", help="run finished scenarios again too")
    p.add_argument(
        "--launcher",
        choices=["local", "slurm"],
        default="local",
        help="local: child processes here; slurm: one SLURM job array through submitit",
    )
    slurm = p.add_argument_group(
        "slurm launcher (with --launcher slurm; pip install 'sucrose-lightning[slurm]')"
    )
    slurm.add_argument("--partition", help="the SLURM partition")
    slurm.add_argument("--time", type=positive_int, default=60, metavar="MIN", help="minutes per job")
    slurm.add_argument("--gpus", type=int, default=0, metavar="N", help="GPUs per job")
    slurm.add_argument("--cpus", type=positive_int, default=1, metavar="N", help="CPUs per job")
    slurm.add_argument("--mem-gb", type=int, default=None, metavar="GB", help="memory per job")
    slurm.add_argument(
        "--cluster", choices=["slurm", "local", "debug"], default="slurm", help=argparse.SUPPRESS
    )  # submitit's executors; local runs the array here (tests)

    p = add(
        "prune",
        "delete all but the newest K checkpoints (.pt and .ckpt each); only lists them unless --yes",
        ["table", "json"],
    )
    p.add_argument("scenario", help="scenario name")
    p.add_argument(
        "--keep",
        type=positive_int,
        required=True,
        metavar="K",
        help="how many of the newest readable checkpoints of each kind to keep (at least 1)",
    )
    p.add_argument("--yes", action="store_true", help="really delete (default: only list)")
    p.add_argument(
        "--force",
        action="store_true",
        help="delete even while a process is training the scenario (its lock is held)",
    )
    return parser
