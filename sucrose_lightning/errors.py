"""One exception family for everything sucrose_lightning reports to a user.

Every error a user can trigger derives from :class:`SucroseError`, so
``except sucrose.SucroseError`` catches all of them. Each message names the
file, domain or key at fault and says what to do about it.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence

__all__ = [
    "CheckpointError",
    "ConfigError",
    "DamagedCheckpointError",
    "DomainNotFoundError",
    "LockError",
    "MissingKeyError",
    "SucroseConfigWarning",
    "SucroseError",
    "SucroseWarning",
    "UnsafeCheckpointError",
    "did_you_mean",
]


class SucroseError(Exception):
    """Root of every error raised by sucrose_lightning.

    Examples:
        >>> try:
        ...     raise ConfigError("/ws/config.yaml", ["line 3: bad"])
        ... except SucroseError as err:
        ...     print(type(err).__name__)
        ConfigError
    """


class ConfigError(SucroseError):
    """``config.yaml`` is missing or has problems; all problems are listed together.

    Attributes:
        path: the config file looked at.
        problems: one line per problem, each starting with ``file:line:column`` where known.
    """

    def __init__(self, path: str, problems: Sequence[str]) -> None:
        self.path = path
        self.problems = list(problems)
        if len(self.problems) == 1:
            text = self.problems[0]
        else:
            text = f"{len(self.problems)} problems in {path}:\n" + "\n".join(
                f"  - {p}" for p in self.problems
            )
        super().__init__(text)


class DomainNotFoundError(SucroseError):
    """A scenario name that is not a domain of ``config.yaml``."""


class MissingKeyError(SucroseError, KeyError):
    """A config key that no domain in the scenario's chain sets.

    It is also a :class:`KeyError`, so ``except KeyError`` keeps working.
    """

    def __str__(self) -> str:  # KeyError would print the repr of the message
        return str(self.args[0]) if self.args else ""


class CheckpointError(SucroseError):
    """A checkpoint could not be written, read or found."""


class DamagedCheckpointError(CheckpointError):
    """A checkpoint file that is damaged (truncated, corrupt, not a checkpoint).

    Loading skips such a file and falls back to an older one; other load errors (a class
    that cannot be imported, a bad ``loader_kwds``) stop with the file named instead.
    """


class UnsafeCheckpointError(CheckpointError):
    """A checkpoint that needs arbitrary pickles, refused because ``weights_only=True``."""


class LockError(SucroseError):
    """Another process is already training (saving) the same scenario."""


class SucroseWarning(UserWarning):
    """Base class of the warnings sucrose_lightning issues."""


class SucroseConfigWarning(SucroseWarning):
    """A config key that looks like a mistake (unused, unknown parameter, changed on resume)."""


def did_you_mean(word: str, candidates: Iterable[str], n: int = 3) -> str:
    """Return ``"; did you mean 'x'?"`` for the closest candidates, or ``""``.

    Examples:
        >>> did_you_mean("hiden_dim", ["hidden_dim", "lr"])
        "; did you mean 'hidden_dim'?"
    """
    close = difflib.get_close_matches(word, list(candidates), n=n, cutoff=0.6)
    if not close:
        return ""
    return "; did you mean " + " or ".join(repr(c) for c in close) + "?"
