"""What every sucrose tracker shares: where a resumed run starts, ``hparams.yaml``, install hints.

A Lightning logger is never told which checkpoint the run resumes from. Lightning calls
``logger.log_graph(module)`` once at the start of every ``fit``/``validate``/``test``, after
the checkpoint is restored and before any metric is logged; the trackers take the trainer
from the module there (:class:`TrainerTap`) and read the global step of the checkpoint they
resume from (``trainer.ckpt_path``): that step is where the resumed curves continue, so any
point at that step or later is a ghost of the run that died.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ._atomic import refuse_symlink
from .errors import SucroseError

__all__ = [
    "Deferred",
    "TrainerTap",
    "fixed_options",
    "missing",
    "plain_writer",
    "umask",
    "write_hparams_yaml",
]

log = logging.getLogger("sucrose_lightning")


class Deferred:
    """Stands for a tracker's run object until something uses it, then opens it.

    Lightning reads ``logger.experiment`` in its setup, before the scenario's lock is taken
    and before the checkpoint is restored; opening the run there would leave an event file
    (or a tracker run) behind a run that is refused or has nothing to do, and would not know
    where a resumed run starts. Any attribute use (``logger.experiment.add_image(...)``) opens
    the real object and forwards to it.
    """

    __slots__ = ("_sucrose_open",)

    def __init__(self, opener: Any) -> None:
        object.__setattr__(self, "_sucrose_open", opener)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sucrose_open(), name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._sucrose_open(), name, value)

    def __repr__(self) -> str:
        return "<sucrose: tracker run not opened yet (opens at first use)>"


def fixed_options(ssc: Any, kind: str, options: dict[str, Any], fixed: Sequence[str]) -> None:
    """Refuse options the scenario decides (its folder, its run name)."""
    given = [k for k in fixed if k in options]
    if given:
        raise SucroseError(
            f"the {kind} logger of scenario {ssc.name!r} decides "
            + ", ".join(f"{k}=" for k in given)
            + " itself; drop "
            + ("it" if len(given) == 1 else "them")
        )


def missing(kind: str, module: str) -> SucroseError:
    """The one-line error for a tracker whose package is not installed."""
    return SucroseError(
        f"ssc.logger({kind!r}) needs {module}, which is not installed; "
        f"install it with: pip install 'sucrose-lightning[{kind}]'"
    )


def umask() -> int:
    """The process's umask (read without changing it where /proc allows)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_hparams_yaml(folder: Path, hparams: Mapping[str, Any], name: str = "hparams.yaml") -> None:
    """Write ``folder/name`` atomically, with the mode of every other file (0666 less the umask)."""
    from lightning.pytorch.core.saving import save_hparams_to_yaml

    folder.mkdir(parents=True, exist_ok=True)
    final = folder / name
    if os.path.islink(final):  # the rename would not follow it, but a planted link is refused loudly
        refuse_symlink(final, "hyperparameters file")
    fd, tmp = tempfile.mkstemp(prefix=".hparams.", suffix=".yaml.tmp", dir=folder)  # O_EXCL
    os.close(fd)
    try:
        save_hparams_to_yaml(tmp, dict(hparams))
        os.chmod(tmp, 0o666 & ~umask())
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


def checkpoint_step(path: str) -> int | None:
    """The ``global_step`` recorded in the Lightning checkpoint at ``path`` (``None`` if unreadable).

    The file is memory-mapped, so only its small pickle is read, not the tensors.
    """
    import torch

    try:
        ckpt = torch.load(path, map_location="cpu", mmap=True, weights_only=True)
    except Exception as err:  # an unreadable file: Lightning has already said what it thinks of it
        log.debug("could not read the global step of %s: %s", path, err)
        return None
    step = ckpt.get("global_step") if isinstance(ckpt, dict) else None
    if not isinstance(step, int) and isinstance(ckpt, dict):
        record = ckpt.get("sucrose")
        step = record.get("step") if isinstance(record, dict) else None
    return step if isinstance(step, int) and not isinstance(step, bool) else None


class TrainerTap:
    """Mixin of the sucrose loggers: learns the trainer in ``log_graph`` and where the run starts."""

    _sucrose_trainer: Any = None
    _sucrose_start: tuple[bool, int | None] | None = None

    def _tap(self, model: Any) -> None:
        trainer = getattr(model, "_trainer", None)
        if trainer is not None:
            self._sucrose_trainer = trainer
            self._sucrose_start = None

    def start_point(self) -> tuple[bool, int | None]:
        """``(fitting, step)``: whether this is a ``fit``, and the global step it starts from.

        The step is 0 for a ``fit`` from no checkpoint, the checkpoint's global step for a
        resumed one, and ``None`` when unknown (no trainer seen yet, not a fit, an unreadable file).
        """
        if self._sucrose_start is not None:
            return self._sucrose_start
        trainer = self._sucrose_trainer
        if trainer is None:
            return False, None
        fitting = getattr(trainer.state, "fn", None) == "fit"
        if not fitting:
            result: tuple[bool, int | None] = (False, None)
        elif not trainer.ckpt_path:
            result = (True, 0)
        else:
            loaded = getattr(getattr(trainer, "_checkpoint_connector", None), "_loaded_checkpoint", None)
            step = loaded.get("global_step") if isinstance(loaded, dict) else None
            if not isinstance(step, int):
                step = checkpoint_step(str(trainer.ckpt_path))
            result = (True, step)
        self._sucrose_start = result
        return result

    def trained(self) -> bool:
        """Whether this ``fit`` trained at least one step past where it started."""
        fitting, step = self.start_point()
        trainer = self._sucrose_trainer
        return fitting and trainer is not None and trainer.global_step > (step or 0)


_EVENT_FILE = re.compile(r"events\.out\.tfevents\.(\d+)\.")


def after_older_event_files(folder: Path) -> None:
    """Return once a new event file in ``folder`` is sure to sort after every existing one.

    Event files are named ``events.out.tfevents.<seconds>.<host>.<pid>.<n>`` and TensorBoard
    reads them in name order; a purge applies only to the events read before it. Two files of
    the same second sort by pid and counter, not by age, so when the newest file is from this
    very second (a restart within a second, as in tests) this waits for the next one: at most
    a second, capped at 2 s when that file's clock is ahead of ours.
    """
    try:
        names = os.listdir(folder)
    except OSError:
        return
    stamps = [int(m.group(1)) for m in map(_EVENT_FILE.match, names) if m]
    if not stamps:
        return
    wait = max(stamps) + 1 - time.time()
    if wait > 2:
        log.warning("event files in %s are from the future (clock skew?); their order may be off", folder)
    if wait > 0:
        time.sleep(min(wait, 2.0))


def plain_writer(ssc: Any, loaded: bool, *, purge: bool = True, axis: str = "step", **kwargs: Any) -> Any:
    """The plain loop's ``SummaryWriter`` on ``ssc.logs_dir`` (``ssc.start_pytorch_tensorboard``).

    With ``purge`` the writer starts with ``purge_step`` at the point the run resumes from
    (``ssc.num_steps`` for ``axis="step"``, ``ssc.last_epoch`` for ``axis="epoch"``): TensorBoard
    drops the points an earlier, killed run logged at that step or later, and a fresh run (0)
    starts the curves over. ``purge=False`` keeps every point.

    Raises:
        SucroseError: ``log_dir``/``purge_step`` given, a bad ``axis``, or ``purge`` while the
            scenario has checkpoints but none was loaded (``loaded`` false): purging from 0
            then would hide every earlier point.
    """
    for fixed in ("log_dir", "purge_step"):
        if fixed in kwargs:
            raise SucroseError(f"start_pytorch_tensorboard() decides {fixed}= itself; drop it")
    if axis not in ("step", "epoch"):
        raise SucroseError(f"start_pytorch_tensorboard(axis=...) is 'step' or 'epoch', not {axis!r}")
    if purge:
        if not loaded:
            raise SucroseError(
                f"scenario {ssc.name!r} has checkpoints in {ssc.ckpts_dir} but none is loaded: call "
                "ssc.load_state_dict(...) before ssc.start_pytorch_tensorboard() (or pass purge=False)"
            )
        kwargs["purge_step"] = ssc.num_steps if axis == "step" else ssc.last_epoch
        after_older_event_files(ssc.logs_dir)
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(log_dir=str(ssc.logs_dir), **kwargs)
