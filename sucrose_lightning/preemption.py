"""Stop signals during ``fit``: save the scenario's stamped checkpoint, requeue, exit; record each run.

Used as::

    trainer = Trainer(callbacks=[*ssc.callbacks(), SucrosePreemption(ssc)], logger=ssc.logger())
    trainer.fit(model, datamodule, ckpt_path=ssc.last_ckpt())

On SIGTERM (spot instances, Kubernetes, ``scancel``) or the requeue signal (SLURM's
``--signal=SIGUSR1@90``; ``SLURMEnvironment(requeue_signal=...)`` changes it), the signal
handler only notes the signal. At the next training batch boundary every rank agrees to stop
(one reduce per batch under DDP; the requeue signal wins over others), the scenario's normal
mid-epoch checkpoint ``<stem>_e<epochs>_s<step>.ckpt`` is written once through
``trainer.save_checkpoint``, and on the requeue signal under
``SLURMEnvironment(auto_requeue=True)`` (Lightning's default on SLURM) rank 0 runs
``scontrol requeue <job>``. Then :class:`Preempted` (a ``SystemExit``) ends the fit:
Lightning tears down, the scenario's lock is released, and the process exits with
``128 + signal number`` (143 for SIGTERM, 138 for SIGUSR1) unless ``exit_code`` says otherwise.
Lightning's own ``hpc_ckpt_<N>.ckpt`` is never written: its SLURM handler is not installed while
this callback handles the requeue signal. The next start's ``ssc.last_ckpt()`` is that file.

SIGTERM never requeues (``scancel`` means stop; SLURM requeues preempted jobs itself when the
partition says so). A signal that arrives after the last training batch lets the fit finish.

Only the first ``SucrosePreemption`` of a trainer acts (a second one, say one from
``ssc.callbacks()`` and one added by hand, does nothing). The callback also records each fit
in the scenario's run history
(:mod:`sucrose_lightning.status`): ``finished``, ``stopped`` (signal, checkpoint, requeued) or
``failed`` (exception type and message). This module imports lightning.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback

from ._lock import ScenarioLock, job_id
from ._protocol import ScenarioLike
from .errors import LockError, SucroseError
from .status import error_text

__all__ = ["Preempted", "SucrosePreemption"]

log = logging.getLogger("sucrose_lightning")


class Preempted(SystemExit):
    """The fit stopped on a signal after its checkpoint was saved; exits with :attr:`code`.

    Attributes:
        signal: the signal's name (``"SIGTERM"``, ``"SIGUSR1"``).
        ckpt: the checkpoint written.
        requeued: whether ``scontrol requeue`` succeeded.
    """

    def __init__(self, code: int, signal_name: str, ckpt: str, requeued: bool) -> None:
        super().__init__(code)
        self.signal = signal_name
        self.ckpt = ckpt
        self.requeued = requeued

    def __str__(self) -> str:
        return f"stopped on {self.signal} after saving {self.ckpt}" + (
            " (job requeued)" if self.requeued else ""
        )


class SucrosePreemption(Callback):
    """Save, requeue and exit on a stop signal during ``fit``; record the run's outcome.

    Args:
        ssc: the scenario.
        signals: the signals that stop the fit; default SIGTERM and the requeue signal
            (``SLURMEnvironment.requeue_signal``, else SIGUSR1).
        requeue: ``None`` (default): requeue on the requeue signal when Lightning's cluster
            environment is ``SLURMEnvironment(auto_requeue=True)``; ``True``: whenever
            ``SLURM_JOB_ID`` is set; ``False``: never.
        exit_code: the process's exit status after a stop (default ``128 + signal number``).

    Examples:
        >>> ssc = sucrose.SucroseScenario(ws, "base")
        >>> callback = SucrosePreemption(ssc)
        >>> callback.exit_code_for(signal.SIGTERM), callback.exit_code_for(signal.SIGUSR1)
        (143, 138)
    """

    def __init__(
        self,
        ssc: ScenarioLike,
        *,
        signals: Sequence[int] | None = None,
        requeue: bool | None = None,
        exit_code: int | None = None,
    ) -> None:
        if exit_code is not None and (isinstance(exit_code, bool) or not 0 <= exit_code <= 255):
            raise SucroseError(f"exit_code must be an int from 0 to 255, not {exit_code!r}")
        self.ssc = ssc
        self.signals = None if signals is None else [signal.Signals(s) for s in signals]
        self.requeue = requeue
        self.exit_code = exit_code
        self.received: int | None = None
        self._inert = False  # another SucrosePreemption of the same trainer does the work
        self._active = False
        self._previous: dict[int, Any] = {}
        self._session: ScenarioLock | None = None

    def exit_code_for(self, signum: int) -> int:
        """The exit status after a stop on ``signum``."""
        return self.exit_code if self.exit_code is not None else 128 + int(signum)

    # ------------------------------------------------------------------ signal handlers

    def _environment(self, trainer: pl.Trainer) -> Any:
        env = getattr(trainer.strategy, "cluster_environment", None)
        return (
            env if env is not None else getattr(trainer._accelerator_connector, "cluster_environment", None)
        )

    def _requeue_signal(self, trainer: pl.Trainer) -> int:
        return int(getattr(self._environment(trainer), "requeue_signal", None) or signal.SIGUSR1)

    def _handled(self, trainer: pl.Trainer) -> list[int]:
        if self.signals is not None:
            return [int(s) for s in self.signals]
        return [int(signal.SIGTERM), self._requeue_signal(trainer)]

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        if self._active:
            if self.received is None:
                self.received = signum
            return
        # the fit is over but Lightning put this handler back: hand the signal to the previous one
        previous = self._previous.get(signum, signal.SIG_DFL)
        signal.signal(signum, previous)
        if callable(previous):
            previous(signum, frame)
        elif previous == signal.SIG_DFL:
            os.kill(os.getpid(), signum)

    def _install(self, trainer: pl.Trainer, capture: bool) -> None:
        """Handle the stop signals; ``capture``: remember the handlers to restore after the fit."""
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in self._handled(trainer):
            current = signal.getsignal(signum)
            if capture and current != self._handler:  # still ours after a failed fit: keep what it replaced
                self._previous[signum] = current
            signal.signal(signum, self._handler)

    def _restore(self) -> None:
        self._active = False
        if threading.current_thread() is not threading.main_thread():
            return
        for signum, previous in self._previous.items():
            with contextlib.suppress(ValueError, TypeError):
                signal.signal(signum, previous if previous is not None else signal.SIG_DFL)

    # ------------------------------------------------------------------ hooks

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """Note stop signals from now on (so Lightning's SLURM handler is not installed); start the run."""
        if stage != "fit":
            return
        first = next(c for c in trainer.callbacks if isinstance(c, SucrosePreemption))  # type: ignore[attr-defined]
        self._inert = first is not self  # e.g. ssc.callbacks() has one and the user added another
        if self._inert:
            return
        self.received = None
        self._active = True
        self._install(trainer, capture=True)
        problem: str | None = None
        if trainer.is_global_zero and self._session is None:
            try:
                self._session = self.ssc.store.writer(cleanup=False, run="lightning")
            except SucroseError as err:
                problem = str(err)
        problem = trainer.strategy.broadcast(problem, src=0)
        if problem is not None:
            self._restore()
            raise LockError(problem)

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Record the epoch target (``max_epochs``) and the epochs resumed from."""
        if self._inert or self._session is None or self._session.run is None:
            return
        ext = self.ssc.config_file.settings.lightning_ckpts_extension
        parsed = self.ssc.layout.parse(Path(str(trainer.ckpt_path)).name, ext) if trainer.ckpt_path else None
        target = trainer.max_epochs if trainer.max_epochs is not None and trainer.max_epochs >= 0 else None
        self._session.run.set_target(target, parsed[0] if parsed else 0)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Replace the handlers Lightning composed meanwhile by this callback's alone."""
        if not self._inert:
            self._install(trainer, capture=False)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        """At a batch boundary: if any rank got a stop signal, save, requeue and stop."""
        if self._inert:
            return
        signum = self._agreed_signal(trainer)
        if signum is None:
            return
        path = self.ssc.layout.ckpt_path(
            trainer.current_epoch,
            trainer.global_step,
            self.ssc.config_file.settings.lightning_ckpts_extension,
        )
        if trainer.is_global_zero:
            self.ssc.store.make_room(path, f"saving {path.name} on {signal.Signals(signum).name}")
        trainer.save_checkpoint(str(path))
        requeued = False
        if (
            trainer.is_global_zero
            and signum == self._requeue_signal(trainer)
            and self._should_requeue(trainer)
        ):
            requeued = _requeue()
        name = signal.Signals(signum).name
        if self._session is not None and self._session.run is not None:
            self._session.run.end("stopped", signal=name, ckpt=str(path), requeued=requeued)
        log.warning(
            "scenario %r: stopped on %s at step %d; saved %s", self.ssc.name, name, trainer.global_step, path
        )
        raise Preempted(self.exit_code_for(signum), name, str(path), requeued)

    def _agreed_signal(self, trainer: pl.Trainer) -> int | None:
        """The stop signal any rank noted (the requeue signal first), the same on every rank; one reduce."""
        requeue_signal = self._requeue_signal(trainer)
        mine = self.received
        code = 0 if mine is None else (256 + mine if mine == requeue_signal else mine)
        if trainer.world_size > 1:
            import torch

            tensor = torch.tensor(code, device=trainer.strategy.root_device)
            code = int(trainer.strategy.reduce(tensor, reduce_op="max").item())
        if code == 0:
            return None
        return code - 256 if code >= 256 else code

    def _should_requeue(self, trainer: pl.Trainer) -> bool:
        if self.requeue is not None:
            return self.requeue and job_id() is not None
        from lightning.fabric.plugins.environments.slurm import SLURMEnvironment

        env = self._environment(trainer)
        return isinstance(env, SLURMEnvironment) and bool(env.auto_requeue) and job_id() is not None

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        """Record ``failed`` (unless this callback stopped the fit), restore the handlers, end the session."""
        if self._inert:
            return
        try:
            if (
                self._session is not None
                and self._session.run is not None
                and not isinstance(exception, Preempted)
            ):
                self._session.run.end("failed", error=error_text(exception))
        finally:
            self._finish()

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """Record ``finished`` (the fit reached its end), restore the handlers, end the session."""
        if stage != "fit" or self._inert:
            return
        try:
            if self._session is not None and self._session.run is not None:
                self._session.run.end("finished")
        finally:
            self._finish()

    def _finish(self) -> None:
        self._restore()
        if self._session is not None:
            self._session.release()
            self._session = None


def _requeue() -> bool:
    """``scontrol requeue <job>``; warns (never raises) when it fails."""
    job = job_id()
    if job is None:
        return False
    try:
        result = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as err:
        log.error("could not requeue SLURM job %s: %s (is scontrol on PATH?)", job, err)
        return False
    if result.returncode != 0:
        log.error("scontrol requeue %s failed (exit %d): %s", job, result.returncode, result.stderr.strip())
        return False
    log.warning("requeued SLURM job %s", job)
    return True
