"""``SucroseScenario``: one run of one domain, with its config, checkpoints, steps and logs.

torch is imported only by the methods that save, load or log; reading the config
(``ssc[key]``, ``ssc.partial``) never imports it.
"""

from __future__ import annotations

import contextvars
import logging
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import _rng
from ._async import AsyncSaver, mmap_kwds
from ._lock import ScenarioLock
from ._record import META_KEY, build_record, drift, load_into, read_record, state_payload
from .config import Config, load_config, plain
from .errors import CheckpointError, DamagedCheckpointError, SucroseConfigWarning, SucroseError
from .layout import CkptFile, Layout
from .status import RunStatus, error_text, track_until_exit
from .store import CheckpointStore
from .values import count
from .view import ConfigView

if TYPE_CHECKING:  # pragma: no cover
    from lightning.pytorch.callbacks import Callback
    from torch.utils.tensorboard import SummaryWriter

__all__ = ["META_KEY", "SucroseScenario", "current", "set_current"]

log = logging.getLogger("sucrose_lightning")

_current: contextvars.ContextVar[SucroseScenario | None] = contextvars.ContextVar(
    "sucrose_current_scenario", default=None
)


def current() -> SucroseScenario:
    """The scenario started last in this thread / context.

    Raises:
        SucroseError: no scenario was started yet.
    """
    ssc = _current.get()
    if ssc is None:
        raise SucroseError(
            "no scenario is started in this thread; call "
            "sucrose.scenario('path/to/workspace', 'domain/name') first"
        )
    return ssc


def set_current(ssc: SucroseScenario) -> None:
    """Make ``ssc`` the scenario that ``sucrose.epoch_range`` and ``sucrose.step`` act on."""
    _current.set(ssc)


class SucroseScenario(ConfigView):
    """One scenario: a domain of ``<workspace>/config.yaml`` and its checkpoint and log folders.

    Reading the config (``ssc[key]``, ``partial``, ``hparams``...) comes from
    :class:`~sucrose_lightning.view.ConfigView`; this class adds the folders, the step and
    epoch counts, the plain loop's saves and loads, and the Lightning factories.

    Args:
        workspace: folder holding ``config.yaml``; checkpoints go to
            ``<workspace>/ckpts/<name>/`` and logs to ``<workspace>/logs/<name>/``.
        name: a domain of the config file, such as ``"base/case1"``.
        config: an already loaded :class:`~sucrose_lightning.config.Config` of that workspace
            (loaded from ``<workspace>/config.yaml`` when omitted).

    Raises:
        ConfigError: ``config.yaml`` is missing or has problems (all listed together).
        DomainNotFoundError: ``name`` is not a domain of the file (close names suggested).

    Examples:
        >>> import tempfile, pathlib
        >>> ws = pathlib.Path(tempfile.mkdtemp())
        >>> _ = (ws / "config.yaml").write_text(
        ...     "base:\\n  model.input_dim: 100\\nbase/case1:\\n  model.input_dim: 200\\n")
        >>> ssc = SucroseScenario(ws, "base/case1")
        >>> ssc["model.input_dim"], ssc.origin("model.input_dim"), ssc.chain
        (200, 'base/case1', ('base/case1', 'base'))
    """

    def __init__(self, workspace: str | os.PathLike[str], name: str, *, config: Config | None = None) -> None:
        self._workspace = Path(workspace).expanduser().absolute()
        super().__init__(config if config is not None else load_config(self._workspace), name)
        self._layout = Layout(self._workspace, name, self._cfg.settings)
        self._store = CheckpointStore(self._layout)
        self._session: ScenarioLock | None = None  # the plain loop's writer session
        self._writer = AsyncSaver(self._store)  # save_state_dict's writer (background or not)
        self._num_steps = 0
        self._epochs: int | None = None  # epochs finished; read from disk on first use

    # ------------------------------------------------------------------ identity and layout

    @property
    def workspace(self) -> Path:
        """The workspace folder (absolute)."""
        return self._workspace

    @property
    def ckpts_dir(self) -> Path:
        """``<workspace>/<ckpts_folder>/<name>``: where this scenario's checkpoints live."""
        return self._layout.ckpts_dir

    @property
    def logs_dir(self) -> Path:
        """``<workspace>/<logs_folder>/<name>``: where this scenario's logs go."""
        return self._layout.logs_dir

    @property
    def layout(self) -> Layout:
        """Names and folders of this scenario's files."""
        return self._layout

    @property
    def store(self) -> CheckpointStore:
        """The scenario's checkpoint folder: listing, resume choice, retention, the writer's lock."""
        return self._store

    def __repr__(self) -> str:
        return f"SucroseScenario({str(self._workspace)!r}, {self._name!r})"

    # ------------------------------------------------------------------ steps and epochs

    @property
    def num_steps(self) -> int:
        """The global step count: ``sucrose.step()`` adds to it; checkpoints record it."""
        return self._num_steps

    @num_steps.setter
    def num_steps(self, value: int) -> None:
        self._num_steps = count(value, 0, "num_steps")

    def step(self, n: int = 1) -> int:
        """Add ``n`` to :attr:`num_steps` (call it after ``optimizer.step()``); returns the new count."""
        self._num_steps += count(n, 0, "step(n)")
        return self._num_steps

    @property
    def last_epoch(self) -> int:
        """Epochs finished: the newest readable stamp on disk (0 when fresh).

        After ``load_state_dict`` or ``save_state_dict`` it is the epoch loaded or counted.
        """
        if self._epochs is None:
            newest = self._store.resume_target(self._cfg.settings.ckpts_extension)
            self._epochs = newest.epochs if newest else 0
        return self._epochs

    def epoch_range(self, n: int) -> range:
        """``range(last_epoch, last_epoch + n)``: train ``n`` more epochs.

        Starting to train takes the scenario's lock, so a second process training the
        same scenario is refused here rather than after its first epoch.

        Raises:
            LockError: another live process is training this scenario.
        """
        count(n, 0, "epoch_range(n)")
        self.acquire_lock()
        start = self.last_epoch
        if self._session is not None and self._session.run is not None:
            self._session.run.set_target(start + n, start)
        return range(start, start + n)

    # ------------------------------------------------------------------ checkpoints

    def acquire_lock(self) -> None:
        """Take the one-writer lock of this scenario and clean up leftovers of killed saves.

        Raises:
            LockError: another live process holds it (its pid, host and start time are named).
        """
        if self._session is None:
            self._session = self._store.writer(run="plain")
            track_until_exit(self._session.run)
            self._store.new_timeline()

    def close(self, error: BaseException | None = None, *, quietly: bool = False) -> None:
        """Wait for a background save (raise its failure; ``quietly``: only log it), end the run
        (``finished``, or ``failed`` with ``error``) and release the lock (also done at exit)."""
        failure = error
        try:
            self._writer.close(quietly=quietly)
        except BaseException as err:
            failure = failure or err
            raise
        finally:
            if self._session is not None:
                try:
                    fields = {} if failure is None else {"error": error_text(failure)}
                    self._session.run.end("finished" if failure is None else "failed", **fields)
                finally:
                    self._session.release()
                    self._session = None

    def status(self) -> list[RunStatus]:
        """This scenario's run history, oldest first: each run's status, host, pid, job, target."""
        return self._store.status()

    def __getstate__(self) -> dict[str, Any]:
        """Pickled without the writer's session: a lock belongs to the process that took it."""
        state = self.__dict__.copy()
        state.update(_session=None, _writer=AsyncSaver(self._store))
        return state

    def __enter__(self) -> SucroseScenario:
        return self

    def __exit__(self, tp: object, error: BaseException | None, tb: object) -> None:
        self.close(error, quietly=error is not None)

    def meta(self, epochs: int, step: int | None = None) -> dict[str, Any]:
        """The record stored under :data:`META_KEY` in every checkpoint this scenario writes."""
        step = self._num_steps if step is None else step
        return build_record(self._name, epochs, step, plain(self._values), self._cfg, _rng.rng_state())

    def ckpts(self, *, plain_loop: bool = False) -> list[CkptFile]:
        """This scenario's stamped checkpoints, oldest first (epochs, step, path).

        Args:
            plain_loop: list the plain-PyTorch files (``.pt``) instead of Lightning's (``.ckpt``).

        Examples:
            >>> ssc = SucroseScenario(ws, "base")
            >>> for _ in range(3):
            ...     _ = ssc.save_state_dict(1, model=MyNet(2, 2, 2))
            >>> [c.epochs for c in ssc.ckpts(plain_loop=True)], ssc.ckpts()
            ([1, 2, 3], [])
            >>> ssc.close()
        """
        settings = self._cfg.settings
        ext = settings.ckpts_extension if plain_loop else settings.lightning_ckpts_extension
        return self._store.files(ext)

    def last_ckpt(self, *, verify: bool = False) -> str | None:
        """Absolute path of the most advanced readable Lightning checkpoint, or ``None``.

        ``trainer.fit(model, ckpt_path=ssc.last_ckpt())`` starts fresh the first time and
        resumes after. Unreadable files are skipped with a warning; ``verify=True`` also
        checks every byte's CRC.
        """
        newest = self._store.resume_target(self._cfg.settings.lightning_ckpts_extension, verify=verify)
        return newest.path if newest else None

    def save_state_dict(
        self, interval: int = 1, *, save_step: bool = True, async_save: bool = False, **objs: Any
    ) -> Path | None:
        """Count one epoch; every ``interval`` calls, save ``objs`` to an epoch-stamped file.

        Objects with ``state_dict()`` are saved by their state dict, others as they are,
        each under its keyword name. The file is written atomically (temporary file in the
        same folder, fsync, rename): a crash never leaves a partial checkpoint.

        Args:
            interval: save once every this many calls (positive int).
            save_step: also record :attr:`num_steps` under the ``step_key`` setting.
            async_save: snapshot ``objs`` and write the file in a background thread; a failure
                is raised by the next save or :meth:`close` ("Asynchronous saves" in the docs).
            **objs: what to save, e.g. ``model=model, optim=optim``.

        Returns:
            The path written, or ``None`` when this call only counted the epoch.

        Raises:
            CheckpointError: the write failed (disk full, permission denied); the previous
                checkpoint is intact and the epoch count is not advanced.
            LockError: another live process is training this scenario.

        Examples:
            >>> ssc = SucroseScenario(ws, "base/case1")
            >>> model = MyNet(2, 2, 2)
            >>> ssc.save_state_dict(2, model=model) is None  # 1 epoch counted, nothing saved
            True
            >>> ssc.save_state_dict(2, model=model).name
            'base_case1_e2.pt'
            >>> ssc.close()
        """
        count(interval, 1, "save_state_dict(interval)")
        step_key = self._cfg.settings.step_key
        for reserved in (step_key, META_KEY):
            if reserved in objs:
                raise SucroseError(
                    f"{reserved!r} is reserved in checkpoints of scenario {self._name!r}; "
                    "save that object under another name"
                )
        self.acquire_lock()
        total = self.last_epoch + 1
        if total % interval:
            self._epochs = total
            return None
        payload = state_payload(objs)
        if save_step:
            payload[step_key] = self._num_steps
        payload[META_KEY] = self.meta(total)
        path = self._layout.ckpt_path(total)
        self._writer.save(payload, path, f"saving epoch {total} of a resumed run", background=async_save)
        self._epochs = total
        log.info("saved %s", path)
        return path

    def load_state_dict(
        self,
        epoch: int | None = None,
        *,
        load_step: bool = True,
        load_rng: bool = True,
        verify: bool = False,
        loader_kwds: Mapping[str, Any] | None = None,
        **objs: Any,
    ) -> dict[str, Any]:
        """Load the newest checkpoint (or the one after ``epoch`` epochs) into ``objs``.

        Each object's ``load_state_dict`` gets the entry saved under its keyword name.
        Unreadable newer files are skipped with a warning. With no checkpoint at all this
        logs that and returns ``{}``.

        Args:
            epoch: load the file stamped with this many epochs instead of the newest.
            load_step: restore :attr:`num_steps`.
            load_rng: restore the random states recorded at save time (exact resume).
            verify: check every byte's CRC before trusting a file.
            loader_kwds: extra ``torch.load`` arguments; ``weights_only=True`` is the default.
            **objs: e.g. ``model=model, optim=optim``.

        Returns:
            The checkpoint's entries that no object consumed.

        Raises:
            CheckpointError: ``epoch`` has no file, an object's entry is missing, or no file
                can be read.

        Examples:
            >>> with SucroseScenario(ws, "base") as ssc:
            ...     _ = ssc.save_state_dict(1, model=MyNet(2, 2, 2), note="hello")
            >>> ssc = SucroseScenario(ws, "base")
            >>> model = MyNet(2, 2, 2)
            >>> ssc.load_state_dict(model=model, loader_kwds={"weights_only": True})
            {'note': 'hello'}
            >>> ssc.last_epoch
            1
        """
        plain_ext = self._cfg.settings.ckpts_extension
        files = self._store.files(plain_ext)
        if epoch is not None:
            files = [c for c in files if c.epochs == epoch]
            if not files:
                have = sorted({c.epochs for c in self._store.files(plain_ext)})
                raise CheckpointError(
                    f"scenario {self._name!r} has no checkpoint after {epoch} epochs in "
                    f"{self.ckpts_dir} (have: {have or 'none'})"
                )

        def accept(ckpt: CkptFile, data: dict[str, Any]) -> None:
            record = read_record(data, ckpt.path)
            if load_rng and record is not None and record.get("rng") is not None:
                try:
                    _rng.restore_rng(record["rng"])
                except Exception as err:
                    raise DamagedCheckpointError(
                        f"checkpoint {ckpt.path} has a damaged random state ({type(err).__name__}: {err})"
                    ) from err

        try:
            kwds = mmap_kwds(self.ckpts_dir, loader_kwds)  # mapped, not read, where the folder is local
            found = self._store.load_newest(files, verify=verify, loader_kwds=kwds, accept=accept)
        except DamagedCheckpointError as err:
            if epoch is None:
                raise
            raise CheckpointError(
                f"the checkpoint of scenario {self._name!r} after {epoch} epochs, {files[0].path}, "
                "cannot be read; load another epoch (ssc.ckpts(plain_loop=True) lists them)"
            ) from err
        if found is None:
            log.info("no checkpoint for scenario %r in %s; starting fresh", self._name, self.ckpts_dir)
            self._epochs = 0 if epoch is None else self._epochs
            return {}
        ckpt, data = found
        self._store.new_timeline()
        load_into(objs, data, ckpt.path)
        step_key = self._cfg.settings.step_key
        if load_step and isinstance(data.get(step_key), int):
            self._num_steps = data[step_key]
        self._epochs = ckpt.epochs
        record = read_record(data, ckpt.path)
        text = None if record is None else drift(record, self._name, self.hparams(), self._cfg.path)
        if text is not None:
            warnings.warn(text, SucroseConfigWarning, stacklevel=2)
        log.info("loaded %s (epochs %d, step %d)", ckpt.path, ckpt.epochs, self._num_steps)
        return {k: v for k, v in data.items() if k not in objs and k not in (step_key, META_KEY)}

    # ------------------------------------------------------------------ logging

    def start_pytorch_tensorboard(
        self, *, purge: bool = True, axis: str = "step", **kwargs: Any
    ) -> SummaryWriter:
        """A ``torch.utils.tensorboard.SummaryWriter`` on :attr:`logs_dir`; call it after ``load_state_dict``.

        ``purge=True`` (default) starts it with ``purge_step`` where the run resumes, so the points
        a killed run logged after its last checkpoint are dropped: :attr:`num_steps` for
        ``axis="step"``, :attr:`last_epoch` for ``axis="epoch"`` (what your ``global_step`` counts).
        ``kwargs`` go to ``SummaryWriter``. See :func:`sucrose_lightning._tracking.plain_writer`.

        Examples:
            >>> ssc = SucroseScenario(ws, "base")
            >>> _ = ssc.load_state_dict()
            >>> writer = ssc.start_pytorch_tensorboard()
            >>> writer.add_scalar("loss", 0.5, ssc.num_steps)
            >>> writer.close()
            >>> [p.name.split(".")[0] for p in ssc.logs_dir.iterdir()]
            ['events']
        """
        from ._tracking import plain_writer

        loaded = self._epochs is not None or not self.ckpts(plain_loop=True)
        writer: SummaryWriter = plain_writer(self, loaded, purge=purge, axis=axis, **kwargs)
        return writer

    # ------------------------------------------------------------------ Lightning

    def callbacks(self, **options: Any) -> list[Callback]:
        """Lightning callbacks for this scenario: ``Trainer(callbacks=ssc.callbacks())``.

        See :class:`sucrose_lightning.lightning.SucroseCheckpoint` for the options.
        """
        from .lightning import make_callbacks

        return make_callbacks(self, **options)

    def logger(self, kind: str | Sequence[str] = "tensorboard", **options: Any) -> Any:
        """Lightning logger(s) rooted in this scenario: ``Trainer(logger=ssc.logger())``.

        ``kind`` is ``"tensorboard"`` (default), ``"csv"``, ``"mlflow"``, ``"wandb"`` or a list of
        them (``ssc.logger(["tensorboard", "mlflow"])``); each keeps one run per scenario across
        resumes. See :func:`sucrose_lightning.loggers.make_logger` and ``docs/tracking.md``.
        """
        from .loggers import make_logger

        return make_logger(self, kind, **options)
