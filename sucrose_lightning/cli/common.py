"""What every subcommand shares: the program's name, usage errors, the workspace and its scenarios."""

from __future__ import annotations

import os
from pathlib import Path

from ..config import CONFIG_FILE, Config, load_config
from ..errors import SucroseError, did_you_mean
from .render import rel

__all__ = ["PROG", "UsageError", "error_line", "load_workspace", "require_scenario", "workspace_folder"]

PROG = "sucrose"


class UsageError(SucroseError):
    """The command cannot run as asked (unknown scenario, missing workspace, ...): exit code 2."""


def error_line(message: object) -> str:
    """The one line an error prints on stderr.

    Examples:
        >>> error_line("unknown scenario 'x'")
        "sucrose: error: unknown scenario 'x'"
    """
    return f"{PROG}: error: {message}"


def workspace_folder(path: str | os.PathLike[str]) -> Path:
    """The workspace folder ``path`` as an absolute path.

    Raises:
        UsageError: it is not a folder.

    Examples:
        >>> workspace_folder("/").is_absolute()
        True
    """
    ws = Path(path).expanduser()
    if not ws.is_dir():
        raise UsageError(
            f"workspace {str(ws)!r} is not a folder; pass the folder holding {CONFIG_FILE} with -w"
        )
    return ws.absolute()


def load_workspace(path: str | os.PathLike[str]) -> tuple[Path, Config]:
    """The workspace folder and its parsed config.

    Raises:
        UsageError: it is not a folder, or it has no ``config.yaml``.
        ConfigError: ``config.yaml`` is broken (every problem listed).
    """
    ws = workspace_folder(path)
    if not (ws / CONFIG_FILE).exists():
        raise UsageError(
            f"no {CONFIG_FILE} in {ws}; run sucrose in a workspace folder or pass it with -w/--workspace"
        )
    return ws, load_config(ws)


def require_scenario(cfg: Config, name: str) -> None:
    """Raise :class:`UsageError` (with the closest names) unless ``name`` is a scenario of ``cfg``.

    Examples:
        >>> cfg = Config(Path("config.yaml"), {"base": {}, "base/wide": {}})
        >>> require_scenario(cfg, "base/wide")
        >>> try:
        ...     require_scenario(cfg, "base/wid")
        ... except UsageError as err:
        ...     "did you mean 'base/wide'" in str(err)
        True
    """
    if name in cfg.domains and name != "workspace":
        return
    if name == "workspace":
        raise UsageError(f"'workspace' in {cfg.path} holds layout settings and is not a scenario")
    hint = did_you_mean(name, cfg.scenarios)
    raise UsageError(
        f"unknown scenario {name!r}: not a domain in {rel(cfg.path)}{hint} "
        f"('sucrose ls' lists all {len(cfg.scenarios)})"
    )
