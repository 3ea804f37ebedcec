"""Workspace folders and epoch-stamped checkpoint names: make, parse, find the newest.

A scenario ``base/case1`` of workspace ``ws`` keeps its checkpoints in
``ws/ckpts/base/case1/`` and its logs in ``ws/logs/base/case1/``. A checkpoint's
name carries the number of epochs finished, and for a save in the middle of an
epoch also the global step::

    base_case1_e10.pt         10 epochs finished (end of epoch)
    base_case1_e3_s1500.ckpt  3 epochs finished, global step 1500 (mid-epoch)

Only names with the scenario's exact stem, prefix and extension count: in
``ckpts/base/`` the file ``base_e10.pt`` is scenario ``base``'s, the folder
``case1/`` belongs to ``base/case1``, and ``base_e10.pt.tmp`` or
``base_e10_old.pt`` are ignored. Several checkpoint callbacks of one scenario tell their
files apart by a label before the extension (``base_case1_e3.best.ckpt``). This module
imports neither torch nor lightning.
"""

from __future__ import annotations

import functools
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

from .config import WorkspaceSettings
from .errors import CheckpointError

__all__ = [
    "ABANDONED_FOLDER",
    "LOCK_FILE",
    "TEMP_NAME",
    "TMP_SUFFIX",
    "VERSION_DIR",
    "WEIGHTS_LABEL",
    "CkptFile",
    "Layout",
    "check_label",
    "is_weights_only",
    "temp_path",
]

ABANDONED_FOLDER = ".abandoned"
TMP_SUFFIX = ".tmp"
#: What :meth:`Layout.temp_path` names look like: ``.<final name>.<pid>.<ns>.tmp``.
TEMP_NAME = re.compile(r"\.(.+)\.(\d+)\.(\d+)" + re.escape(TMP_SUFFIX))
#: Lightning's versioned log folders, which tools treat as part of a scenario's logs.
VERSION_DIR = re.compile(r"version_\d+")
LOCK_FILE = ".sucrose.lock"


def temp_path(final: Path) -> Path:
    """A hidden temporary name next to ``final``, unique to this process and moment.

    Examples:
        >>> temp_path(Path("/ws/ckpts/base/base_e1.pt")).name.startswith(".base_e1.pt.")
        True
    """
    return final.with_name(f".{final.name}.{os.getpid()}.{time.monotonic_ns()}{TMP_SUFFIX}")


#: A label telling callbacks' files apart: ``base_case1_e3.best.ckpt`` (lowercase, digits, ``_``, ``-``).
LABEL = r"(?!tmp(?![a-z0-9_-]))[a-z0-9][a-z0-9_-]{0,31}"
_LABEL_RE = re.compile(LABEL)
#: Labels of files that hold weights only (``save_weights_only=True``): never a resume point.
WEIGHTS_LABEL = "weights"

Select = Callable[[str | None], bool]


@functools.lru_cache(maxsize=64)
def _tail(ext: str, joined: bool) -> re.Pattern[str]:
    """What follows ``<stem>_<prefix>`` in a stamped name with extension ``ext``.

    One pattern per extension for every scenario of every workspace: a name is first checked
    for the scenario's literal head (``str.startswith``), then its tail is parsed, so listing
    1,000 scenarios compiles no regular expression per scenario. ``joined=True``: the pattern
    finds whole tails in a text of tails each preceded and followed by NUL (a file name cannot
    hold NUL), with groups ``(tail, epochs, step, label)``.
    """
    body = rf"(0|[1-9][0-9]*)(?:_s(0|[1-9][0-9]*))?(?:\.({LABEL}))?{re.escape(ext)}"
    if joined:  # the text starts and ends with NUL; a literal first character is found fast
        return re.compile(rf"\x00({body})(?=\x00)")
    return re.compile(body)


def check_label(label: object) -> str | None:
    """Why ``label`` cannot name a callback's files, or ``None``.

    Examples:
        >>> check_label("best") is None
        True
        >>> check_label("Best")  # doctest: +ELLIPSIS
        "label 'Best' must be 1-32 lowercase letters, digits, '_' or '-', starting with ..."
    """
    if isinstance(label, str) and _LABEL_RE.fullmatch(label):
        return None
    return (
        f"label {label!r} must be 1-32 lowercase letters, digits, '_' or '-', starting with a letter or digit"
    )


def is_weights_only(label: str | None) -> bool:
    """Whether files with ``label`` hold weights only (``weights`` or ``<tag>-weights``).

    Examples:
        >>> is_weights_only("weights"), is_weights_only("best-weights"), is_weights_only("best")
        (True, True, False)
    """
    return label is not None and (label == WEIGHTS_LABEL or label.endswith("-" + WEIGHTS_LABEL))


class CkptFile(NamedTuple):
    """One stamped checkpoint file: ``epochs, step, path = ckpt`` works too.

    Attributes:
        epochs: number of epochs finished when it was written.
        step: global step for a mid-epoch save, ``None`` for an end-of-epoch save.
        path: absolute path of the file.
    """

    epochs: int
    step: int | None
    path: str

    @property
    def order(self) -> tuple[int, int]:
        """Sort key: most epochs, then most steps (an end-of-epoch file comes first)."""
        return (self.epochs, -1 if self.step is None else self.step)


class Layout:
    """Where one scenario's files live, and how its checkpoints are named.

    Args:
        workspace: the folder holding ``config.yaml``.
        name: the scenario (domain) name, already checked.
        settings: layout settings from the ``workspace`` domain.

    Examples:
        >>> lay = Layout(Path("/ws"), "base/case1", WorkspaceSettings())
        >>> lay.ckpt_name(10)
        'base_case1_e10.pt'
        >>> lay.parse("base_case1_e3_s1500.pt")
        (3, 1500)
        >>> lay.parse("base_case1_e10.pt.tmp") is None
        True
    """

    def __init__(self, workspace: Path, name: str, settings: WorkspaceSettings) -> None:
        self.workspace = workspace
        self.name = name
        self.settings = settings
        self.stem = name.replace("/", "_")
        self.ckpts_dir = workspace / settings.ckpts_folder / name
        self.logs_dir = workspace / settings.logs_folder / name
        self._ckpts_str = str(self.ckpts_dir)
        #: every stamped name starts with it: ``base_case1_e``
        self._head = f"{self.stem}_{settings.epoch_prefix}"

    def ckpt_name(
        self, epochs: int, step: int | None = None, ext: str | None = None, label: str | None = None
    ) -> str:
        """The file name for a checkpoint after ``epochs`` epochs (and ``step`` mid-epoch).

        ``label`` tells the files of several callbacks of one scenario apart:
        ``ckpt_name(3, label="best")`` is ``base_case1_e3.best.pt``.
        """
        ext = self.settings.ckpts_extension if ext is None else ext
        tail = "" if step is None else f"_s{step}"
        mark = "" if label is None else f".{label}"
        return f"{self.stem}_{self.settings.epoch_prefix}{epochs}{tail}{mark}{ext}"

    def ckpt_path(
        self, epochs: int, step: int | None = None, ext: str | None = None, label: str | None = None
    ) -> Path:
        """Absolute path of :meth:`ckpt_name` in the scenario's checkpoint folder."""
        return self.ckpts_dir / self.ckpt_name(epochs, step, ext, label)

    def parse(self, filename: str, ext: str | None = None) -> tuple[int, int | None] | None:
        """``(epochs, step)`` if ``filename`` is one of this scenario's checkpoints, else ``None``."""
        parsed = self.parse_label(filename, ext)
        return None if parsed is None else parsed[:2]

    def parse_label(self, filename: str, ext: str | None = None) -> tuple[int, int | None, str | None] | None:
        """``(epochs, step, label)`` if ``filename`` is one of this scenario's checkpoints, else ``None``.

        Examples:
            >>> Layout(Path("/ws"), "base", WorkspaceSettings()).parse_label("base_e3_s9.best.ckpt", ".ckpt")
            (3, 9, 'best')
        """
        ext = self.settings.ckpts_extension if ext is None else ext
        if not filename.startswith(self._head):
            return None
        match = _tail(ext, False).fullmatch(filename, len(self._head))
        if match is None:
            return None
        epochs, step, label = match.groups()
        return int(epochs), None if step is None else int(step), label

    def scan(self, ext: str | None = None, select: Select | None = None) -> list[CkptFile]:
        """The scenario's stamped checkpoints with extension ``ext``, oldest first.

        Args:
            ext: the extension (the plain loop's by default).
            select: keep only files whose label (``None`` for an unlabelled file) it accepts;
                every file when omitted.
        """
        ext = self.settings.ckpts_extension if ext is None else ext
        return [self._file(*stamp, ext) for stamp in self._stamps(ext, select)]

    def scan_all(
        self, exts: Sequence[str], select: Select | None = None, names: Iterable[str] | None = None
    ) -> list[CkptFile]:
        """The stamped checkpoints of every extension in ``exts``, oldest first, from one listing.

        At one stamp files sort by name. ``select`` as in :meth:`scan`. ``names``: the names of
        the folder's regular files when the caller has listed it already (a workspace walk).
        """
        return [c for *_, c in self._listed(exts, select, self._names() if names is None else names)]

    def scan_stats(
        self, exts: Sequence[str], select: Select | None = None, names: Iterable[str] | None = None
    ) -> list[tuple[CkptFile, os.stat_result]]:
        """:meth:`scan_all` with each file's ``stat``; a file removed in between is left out."""
        out: list[tuple[CkptFile, os.stat_result]] = []
        for ckpt in self.scan_all(exts, select, names):
            try:
                out.append((ckpt, os.stat(ckpt.path)))
            except OSError:
                continue
        return out

    def newest_first(self, ext: str | None = None, select: Select | None = None) -> Iterator[CkptFile]:
        """The stamped checkpoints newest first, built one at a time (resume looks at one or two)."""
        ext = self.settings.ckpts_extension if ext is None else ext
        stamps = self._stamps(ext, select, sort=False)
        # resuming looks at the newest and at its twins (other callbacks' files of the same state),
        # then stops at the first older file: take maxima one by one (linear, in C) and sort the
        # whole folder only for a run that falls back past several damaged files
        for _ in range(4):
            if not stamps:
                return
            newest = max(stamps)
            i = stamps.index(newest)
            stamps[i] = stamps[-1]
            stamps.pop()
            yield self._file(*newest, ext)
        stamps.sort(reverse=True)
        for stamp in stamps:
            yield self._file(*stamp, ext)

    def _file(self, epochs: int, step: int, main: bool, label: str, ext: str) -> CkptFile:
        real_step = None if step < 0 else step
        name = self.ckpt_name(epochs, real_step, ext, label or None)
        return CkptFile(epochs, real_step, self._ckpts_str + os.sep + name)

    def _names(self) -> list[str]:
        """Names of the folder's regular files."""
        try:
            with os.scandir(self.ckpts_dir) as entries:
                return [e.name for e in entries if e.is_file()]
        except (FileNotFoundError, NotADirectoryError):
            return []
        except OSError as err:
            raise CheckpointError(
                f"cannot list the checkpoint folder {self.ckpts_dir} of scenario {self.name!r}: "
                f"{err.strerror or err}; check its permissions"
            ) from None

    def _found(self, ext: str, names: Iterable[str]) -> list[tuple[str, str, str, str]]:
        """``(tail, epochs, step, label)`` strings of the stamped ``names`` with extension ``ext``.

        One regex pass over the NUL-joined tails of the names that start with the scenario's
        head and end with ``ext`` (a name cannot hold NUL, so every tail is whole).
        """
        head, cut = self._head, len(self._head)
        tails = [n[cut:] for n in names if n.startswith(head) and n.endswith(ext)]
        return _tail(ext, True).findall("\x00" + "\x00".join(tails) + "\x00")

    def _stamps(
        self, ext: str, select: Select | None = None, sort: bool = True
    ) -> list[tuple[int, int, bool, str]]:
        """``(epochs, step or -1, unlabelled?, label or "")`` of each stamped name, oldest first.

        One listing, one regex pass (:meth:`_found`) and C-level sorting of tuples: a folder of
        10,000 checkpoints takes two to three times as long as listing it. At one stamp an
        unlabelled file sorts after labelled ones.
        """
        found = self._found(ext, self._names())
        # (epochs, step, unlabelled?, label): at one stamp the unlabelled file sorts last, so the
        # newest-first scan (and so the resume rule) picks it over a labelled twin of the same state
        stamps = [(int(e), int(s) if s else -1, not lab, lab) for _, e, s, lab in found]
        if select is not None:  # asked once per label, not once per file
            refused = {lab for lab in {s[3] for s in stamps} if not select(lab or None)}
            if refused:
                stamps = [s for s in stamps if s[3] not in refused]
        if sort:
            stamps.sort()
        return stamps

    def _listed(
        self, exts: Sequence[str], select: Select | None, names: Iterable[str]
    ) -> list[tuple[int, int, str, CkptFile]]:
        """``(epochs, step or -1, tail, file)`` of ``names`` for every extension, sorted."""
        names = names if isinstance(names, (list, tuple, dict)) else list(names)  # read once per extension
        prefix = self._ckpts_str + os.sep + self._head
        out: list[tuple[int, int, str, CkptFile]] = []
        for ext in exts:
            for tail, e, s, lab in self._found(ext, names):
                if select is None or select(lab or None):
                    epochs, step = int(e), int(s) if s else None
                    out.append(
                        (epochs, -1 if step is None else step, tail, CkptFile(epochs, step, prefix + tail))
                    )
        out.sort()  # (order, name): names are unique, so the files themselves are never compared
        return out

    def temp_path(self, final: Path) -> Path:
        """:func:`temp_path` of ``final``."""
        return temp_path(final)

    def temp_files(self) -> list[Path]:
        """Temporary files of saves in the checkpoint folder (:meth:`temp_path` names).

        Stamped checkpoints and Lightning's ``last.ckpt`` alike: every file of the form
        ``.<name>.<pid>.<ns>.tmp``. Only this scenario writes into its folder (a child
        scenario's files live in a subfolder).
        """
        try:
            with os.scandir(self.ckpts_dir) as entries:
                return [Path(e.path) for e in entries if TEMP_NAME.fullmatch(e.name) and e.is_file()]
        except (FileNotFoundError, NotADirectoryError):
            return []

    @property
    def lock_path(self) -> Path:
        """The lock file that marks a process training this scenario."""
        return self.ckpts_dir / LOCK_FILE

    @property
    def abandoned_dir(self) -> Path:
        """Where checkpoints newer than a resumed one are moved, instead of being overwritten."""
        return self.ckpts_dir / ABANDONED_FOLDER
