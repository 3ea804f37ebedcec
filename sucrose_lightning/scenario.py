"""``SucroseScenario``: one run of one domain, with its config, checkpoints, steps and logs.

torch is imported only by the methods that save, load or log; reading the config
(``ssc[key]``, ``ssc.partial``) never imports it.
"""

from __future__ import annotations

import contextvars
import itertools
import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from . import storage
from .config import Config, load_config, plain, under_prefix
from .errors import (
    CheckpointError,
    DamagedCheckpointError,
    MissingKeyError,
    SucroseError,
    did_you_mean,
)
from .layout import CkptFile, Layout
from .partial import ConfigPartial, make_partial

if TYPE_CHECKING:  # pragma: no cover
    from lightning.pytorch.callbacks import Callback
    from lightning.pytorch.loggers import TensorBoardLogger
    from torch.utils.tensorboard import SummaryWriter

__all__ = ["META_KEY", "SucroseScenario", "current", "set_current"]

log = logging.getLogger("sucrose_lightning")

#: Key of the scenario's own record (name, epochs, config, hash, random states) in a checkpoint.
META_KEY = "sucrose"
_FORMAT_VERSION = 1

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


class SucroseScenario:
    """One scenario: a domain of ``<workspace>/config.yaml`` and its checkpoint and log folders.

    The domain's chain is merged once, here; ``ssc[key]`` is then a dict lookup.

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
        self._cfg = config if config is not None else load_config(self._workspace)
        self._cfg.require(name)
        self._name = name
        self._chain = self._cfg.chain(name)
        self._values, self._origins = self._cfg.merged(name)
        self._view = MappingProxyType(self._values)
        self._read: set[str] = set()
        self._layout = Layout(self._workspace, name, self._cfg.settings)
        self._lock = storage.ScenarioLock(self._layout)
        self._num_steps = 0
        self._epochs: int | None = None  # epochs finished; read from disk on first use

    # ------------------------------------------------------------------ identity and layout

    @property
    def name(self) -> str:
        """The scenario (domain) name, e.g. ``"base/case1"``."""
        return self._name

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
    def config_file(self) -> Config:
        """The parsed config file (all domains, their lines, settings and hash)."""
        return self._cfg

    def __repr__(self) -> str:
        return f"SucroseScenario({str(self._workspace)!r}, {self._name!r})"

    # ------------------------------------------------------------------ reading the config

    @property
    def chain(self) -> tuple[str, ...]:
        """The domains searched for a key, child first: ``('base/case1', 'base')``."""
        return self._chain

    @property
    def config(self) -> Mapping[str, Any]:
        """The merged config as a read-only mapping (reading it does not mark keys as used)."""
        return self._view

    def _missing(self, key: str) -> MissingKeyError:
        searched = " -> ".join(self._chain)
        return MissingKeyError(
            f"key {key!r} is not set for scenario {self._name!r} (domains searched: {searched} "
            f"in {self._cfg.path}){did_you_mean(str(key), self._values)}"
        )

    def __getitem__(self, key: str) -> Any:
        try:
            value = self._values[key]
        except (KeyError, TypeError):
            raise self._missing(key) from None
        self._read.add(key)
        return value

    def get(self, key: str, default: Any = None) -> Any:
        """``ssc[key]`` if set, else ``default``."""
        try:
            value = self._values[key]
        except (KeyError, TypeError):
            return default
        self._read.add(key)
        return value

    def __contains__(self, key: object) -> bool:
        return key in self._values

    def config_of(self, prefix: str) -> dict[str, Any]:
        """The keys under ``prefix.`` with the prefix removed.

        Examples:
            >>> # model.input_dim: 200, model.hidden_dim: 100, optim.lr: 0.1
            >>> # ssc.config_of("model") -> {"input_dim": 200, "hidden_dim": 100}
        """
        out = under_prefix(self._values, prefix)
        head = prefix.rstrip(".") + "." if prefix.rstrip(".") else ""
        self._read.update(head + k for k in out)
        return out

    def origin(self, key: str) -> str:
        """The domain that set ``key``'s value (the nearest in the chain).

        Raises:
            MissingKeyError: ``key`` is not set.
        """
        try:
            return self._origins[key]
        except (KeyError, TypeError):
            raise self._missing(key) from None

    def hparams(self, prefix: str | None = None) -> dict[str, Any]:
        """The merged config (or the keys under ``prefix``) as a plain dict of plain values.

        Meant for ``save_hyperparameters`` and loggers; it does not mark keys as used.
        """
        return plain(self._values if prefix is None else under_prefix(self._values, prefix))

    def unused_keys(self) -> list[str]:
        """Merged keys never read through ``ssc[...]``, ``get``, ``config_of`` or ``partial``."""
        return sorted(k for k in self._values if k not in self._read)

    def partial(
        self, fn: Callable[..., Any], prefix: str = "", /, *, strict: bool | None = None, **kwargs: Any
    ) -> ConfigPartial:
        """Like ``functools.partial(fn, **config keys under prefix that fn takes)``.

        Args:
            fn: a function or class (its ``__init__`` signature, inherited ones too).
            prefix: dotted prefix such as ``"model"``; ``prefix.<name>`` binds parameter
                ``<name>``. ``model.encoder.dim`` goes to a parameter ``encoder`` as
                ``{"dim": ...}`` when no ``model.encoder`` key exists. A ``**kwargs``
                callable takes every direct key under the prefix.
            strict: raise instead of warning about keys under the prefix that match no
                parameter. If ``fn`` has a parameter named ``strict`` itself, give that one at
                call time (``ssc.partial(fn, "model")(strict=True)``).
            **kwargs: values that win over the config (as do those given at call time).

        Returns:
            A real :class:`functools.partial`; ``.keywords`` shows what was bound.

        Raises:
            SucroseError: with ``strict``, for unknown keys; when called, for a required
                parameter that neither the config nor the call supplies.

        Examples:
            >>> # model = ssc.partial(MyNet, "model")()   # MyNet(input_dim=200, ...)
        """
        under = f"{prefix}." if prefix else "the top level"
        where = f"under {under} in scenario {self._name!r} ({' -> '.join(self._chain)})"
        part, binding = make_partial(
            fn, prefix, self._values, where=where, strict=strict, overrides=kwargs
        )
        self._read.update(binding.used)
        return part

    # ------------------------------------------------------------------ steps and epochs

    @property
    def num_steps(self) -> int:
        """The global step count: ``sucrose.step()`` adds to it; checkpoints record it."""
        return self._num_steps

    @num_steps.setter
    def num_steps(self, value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise SucroseError(f"num_steps must be a non-negative int, not {value!r}")
        self._num_steps = value

    def step(self, n: int = 1) -> int:
        """Add ``n`` to :attr:`num_steps` (call it after ``optimizer.step()``); returns the new count."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise SucroseError(f"step(n) takes a non-negative int, not {n!r}")
        self._num_steps += n
        return self._num_steps

    @property
    def last_epoch(self) -> int:
        """Epochs finished: the newest readable stamp on disk (0 when fresh).

        After ``load_state_dict`` or ``save_state_dict`` it is the epoch loaded or counted.
        """
        if self._epochs is None:
            newest = storage.first_valid(self._layout.newest_first())
            self._epochs = newest.epochs if newest else 0
        return self._epochs

    def epoch_range(self, n: int) -> range:
        """``range(last_epoch, last_epoch + n)``: train ``n`` more epochs.

        Starting to train takes the scenario's lock, so a second process training the
        same scenario is refused here rather than after its first epoch.

        Raises:
            LockError: another live process is training this scenario.
        """
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise SucroseError(f"epoch_range(n) takes a non-negative int, not {n!r}")
        self.acquire_lock()
        start = self.last_epoch
        return range(start, start + n)

    # ------------------------------------------------------------------ checkpoints

    def acquire_lock(self) -> None:
        """Take the one-writer lock of this scenario and clean up leftovers of killed saves.

        Raises:
            LockError: another live process holds it (its pid, host and start time are named).
        """
        if not self._lock.held:
            self._lock.acquire()
            storage.cleanup_temps(self._layout)

    def close(self) -> None:
        """Release the scenario's lock (also done at interpreter exit)."""
        self._lock.release()

    def __enter__(self) -> SucroseScenario:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def meta(self, epochs: int, step: int | None = None) -> dict[str, Any]:
        """The record stored under :data:`META_KEY` in every checkpoint this scenario writes."""
        return {
            "format": _FORMAT_VERSION,
            "scenario": self._name,
            "epochs": epochs,
            "step": self._num_steps if step is None else step,
            "config": plain(self._values),
            "config_sha256": self._cfg.sha256,
            "config_path": str(self._cfg.path),
            "rng": storage.rng_state(),
        }

    def ckpts(self, *, plain_loop: bool = False) -> list[CkptFile]:
        """This scenario's stamped checkpoints, oldest first (epochs, step, path).

        Args:
            plain_loop: list the plain-PyTorch files (``.pt``) instead of Lightning's (``.ckpt``).

        Examples:
            >>> # trainer.fit(model, ckpt_path=ssc.ckpts()[-3].path)
        """
        settings = self._cfg.settings
        ext = settings.ckpts_extension if plain_loop else settings.lightning_ckpts_extension
        return self._layout.scan(ext)

    def last_ckpt(self, *, verify: bool = False) -> str | None:
        """Absolute path of the most advanced readable Lightning checkpoint, or ``None``.

        ``trainer.fit(model, ckpt_path=ssc.last_ckpt())`` starts fresh the first time and
        resumes after. Unreadable files are skipped with a warning; ``verify=True`` also
        checks every byte's CRC.
        """
        ext = self._cfg.settings.lightning_ckpts_extension
        newest = storage.first_valid(self._layout.newest_first(ext), verify=verify)
        return newest.path if newest else None

    def save_state_dict(self, interval: int = 1, *, save_step: bool = True, **objs: Any) -> Path | None:
        """Count one epoch; every ``interval`` calls, save ``objs`` to an epoch-stamped file.

        Objects with ``state_dict()`` are saved by their state dict, others as they are,
        each under its keyword name. The file is written atomically (temporary file in the
        same folder, fsync, rename): a crash never leaves a partial checkpoint.

        Args:
            interval: save once every this many calls (positive int).
            save_step: also record :attr:`num_steps` under the ``step_key`` setting.
            **objs: what to save, e.g. ``model=model, optim=optim``.

        Returns:
            The path written, or ``None`` when this call only counted the epoch.

        Raises:
            CheckpointError: the write failed (disk full, permission denied); the previous
                checkpoint is intact and the epoch count is not advanced.
            LockError: another live process is training this scenario.

        Examples:
            >>> # ssc.save_state_dict(10, model=model, optim=optim)  # -> .../base_case1_e10.pt
        """
        if isinstance(interval, bool) or not isinstance(interval, int) or interval < 1:
            raise SucroseError(f"save_state_dict interval must be a positive int, not {interval!r}")
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
        payload: dict[str, Any] = {}
        for key, obj in objs.items():
            state_dict = getattr(obj, "state_dict", None)
            payload[key] = state_dict() if callable(state_dict) else obj
        if save_step:
            payload[step_key] = self._num_steps
        payload[META_KEY] = self.meta(total)
        newer = list(itertools.takewhile(lambda c: c.epochs >= total, self._layout.newest_first()))
        if newer:
            storage.move_aside(newer, self._layout, f"saving epoch {total} of a resumed run")
        path = self._layout.ckpt_path(total)
        storage.atomic_save(payload, path, self._layout)
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
            >>> # ssc.load_state_dict(model=model, optim=optim, loader_kwds={'weights_only': True})
        """
        files = self._layout.scan()
        if epoch is not None:
            files = [c for c in files if c.epochs == epoch]
            if not files:
                have = sorted({c.epochs for c in self._layout.scan()})
                raise CheckpointError(
                    f"scenario {self._name!r} has no checkpoint after {epoch} epochs in "
                    f"{self.ckpts_dir} (have: {have or 'none'})"
                )
        ckpt, data = self._load_newest(files, verify, loader_kwds, load_rng, epoch)
        if ckpt is None:
            log.info("no checkpoint for scenario %r in %s; starting fresh", self._name, self.ckpts_dir)
            self._epochs = 0 if epoch is None else self._epochs
            return {}
        missing = [k for k in objs if k not in data]
        if missing:
            raise CheckpointError(
                f"checkpoint {ckpt.path} has no entry {', '.join(map(repr, missing))} "
                f"(entries: {', '.join(repr(k) for k in data if k != META_KEY)})"
            )
        for key, obj in objs.items():
            loader = getattr(obj, "load_state_dict", None)
            if not callable(loader):
                raise SucroseError(f"cannot load {key!r}: {type(obj).__name__} has no load_state_dict()")
            try:
                loader(data[key])
            except (RuntimeError, ValueError, KeyError, TypeError) as err:
                raise CheckpointError(
                    f"could not load entry {key!r} of {ckpt.path} into {type(obj).__name__} ({err}); "
                    "was it saved from the same model and config?"
                ) from err
        step_key = self._cfg.settings.step_key
        if load_step and isinstance(data.get(step_key), int):
            self._num_steps = data[step_key]
        self._epochs = ckpt.epochs
        log.info("loaded %s (epochs %d, step %d)", ckpt.path, ckpt.epochs, self._num_steps)
        return {k: v for k, v in data.items() if k not in objs and k not in (step_key, META_KEY)}

    def _load_newest(
        self,
        files: list[CkptFile],
        verify: bool,
        loader_kwds: Mapping[str, Any] | None,
        load_rng: bool,
        epoch_wanted: int | None = None,
    ) -> tuple[CkptFile | None, dict[str, Any]]:
        """Load the newest readable file of ``files`` (and restore its random states),
        falling back past unreadable ones with a warning."""
        remaining = list(files)
        while remaining:
            ckpt = storage.newest_valid(remaining, verify=verify)
            if ckpt is None:
                break
            try:
                data = storage.torch_load(ckpt.path, loader_kwds)
                if not isinstance(data, dict):
                    raise DamagedCheckpointError(
                        f"checkpoint {ckpt.path} holds a {type(data).__name__}, not a dict"
                    )
                meta = data.get(META_KEY)
                if load_rng and isinstance(meta, dict) and meta.get("rng") is not None:
                    try:
                        storage.restore_rng(meta["rng"])
                    except Exception as err:
                        raise DamagedCheckpointError(
                            f"checkpoint {ckpt.path} has a damaged random state ({type(err).__name__}: {err})"
                        ) from err
                return ckpt, data
            except DamagedCheckpointError as err:
                storage.warn_skipped(ckpt.path, str(err))
                remaining = [c for c in remaining if c.order < ckpt.order]
        if len(files) == 1 and files[0].epochs == epoch_wanted:
            raise CheckpointError(
                f"the checkpoint of scenario {self._name!r} after {epoch_wanted} epochs, {files[0].path}, "
                "cannot be read; load another epoch (ssc.ckpts(plain_loop=True) lists them)"
            )
        if files:
            raise CheckpointError(
                f"none of the {len(files)} checkpoint(s) of scenario {self._name!r} in "
                f"{self.ckpts_dir} can be read; move them away to start fresh"
            )
        return None, {}

    # ------------------------------------------------------------------ logging

    def start_pytorch_tensorboard(self, **kwargs: Any) -> SummaryWriter:
        """A ``torch.utils.tensorboard.SummaryWriter`` writing to :attr:`logs_dir`.

        Args:
            **kwargs: passed to ``SummaryWriter`` (``log_dir`` is fixed to the scenario's).

        Examples:
            >>> # writer = ssc.start_pytorch_tensorboard()
            >>> # writer.add_scalar("loss", loss, ssc.num_steps)
        """
        if "log_dir" in kwargs:
            raise SucroseError("start_pytorch_tensorboard() writes to the scenario's logs_dir; drop log_dir=")
        from torch.utils.tensorboard import SummaryWriter

        return SummaryWriter(log_dir=str(self.logs_dir), **kwargs)

    # ------------------------------------------------------------------ Lightning

    def callbacks(self, **options: Any) -> list[Callback]:
        """Lightning callbacks for this scenario: ``Trainer(callbacks=ssc.callbacks())``.

        See :class:`sucrose_lightning.lightning.SucroseCheckpoint` for the options.
        """
        from .lightning import make_callbacks

        return make_callbacks(self, **options)

    def logger(self, **options: Any) -> TensorBoardLogger:
        """Lightning's ``TensorBoardLogger`` writing exactly to :attr:`logs_dir`.

        See :func:`sucrose_lightning.lightning.make_logger` for the options.
        """
        from .lightning import make_logger

        return make_logger(self, **options)

