"""The ``sucrose`` argument parser and its argument types."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from .common import PROG

__all__ = ["build_parser", "positive_int"]

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

    add(
        "ls",
        "tree of scenarios: epochs done, checkpoints, size, newest, logs; and orphans",
        ["table", "json"],
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
        p.add_argument("scenarios", nargs="+", metavar="SCENARIO", help="scenario names")
        p.add_argument("--tag", help="the scalar's tag, e.g. train/loss")
        p.add_argument("--list-tags", action="store_true", help="list the scalar tags of each scenario")
        if name == "plot":
            p.add_argument(
                "-o", "--output", help="PNG file to write (default: <tag>.png in the current folder)"
            )

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
