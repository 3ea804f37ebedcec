"""What the checkpoint callback puts into and takes out of a Lightning checkpoint.

The scenario's record (with every rank's random states), adopting the state of a stock
``ModelCheckpoint`` when a project switches to sucrose, and what a resume says about a
changed config. Kept apart from ``lightning.py`` so that the callback stays about saving.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import lightning.pytorch as pl

from . import _rng
from ._protocol import ScenarioLike
from ._record import META_KEY, drift, read_record
from ._warn import warn_user
from .errors import CheckpointError, SucroseConfigWarning, SucroseError, SucroseWarning

__all__ = ["adopt_stock_state", "gather_rng", "resume_record", "weights_only_refusal"]

_not_sucrose_warned: set[str] = set()


def gather_rng(trainer: pl.Trainer) -> tuple[dict[str, Any], list[dict[str, Any]] | None]:
    """This rank's random states, and every rank's (``None`` on one process).

    Runs on every rank (Lightning dumps a checkpoint on all of them), so the collective is safe.
    """
    mine = _rng.rng_state()
    if trainer.world_size <= 1:
        return mine, None
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return mine, None
    every: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(every, mine)
    return every[0], every


def adopt_stock_state(
    callback: pl.callbacks.ModelCheckpoint, checkpoint: dict[str, Any], stock_key: str
) -> bool:
    """Give ``callback`` the state a stock ``ModelCheckpoint`` with the same options saved.

    Returns:
        Whether a stock state was found and copied under the callback's own key.
    """
    states = checkpoint.get("callbacks")
    if not isinstance(states, dict) or callback.state_key in states or stock_key not in states:
        return False
    states[callback.state_key] = states[stock_key]
    return True


def weights_only_refusal(checkpoint: dict[str, Any], path: object) -> str | None:
    """Why a fit cannot resume from ``checkpoint`` (a weights-only file), or ``None``."""
    if "optimizer_states" in checkpoint and "loops" in checkpoint:
        return None
    return (
        f"checkpoint {path} holds the weights only (saved with save_weights_only=True), so training "
        "cannot resume from it; resume from ssc.last_ckpt() (which never returns such a file), or load "
        "the weights into a new model with MyModule.load_from_checkpoint(path)"
    )


def resume_record(
    ssc: ScenarioLike, trainer: pl.Trainer, checkpoint: dict[str, Any], *, strict: bool, fitting: bool
) -> None:
    """Check the record of the checkpoint Lightning restores, warn about drift, restore random states.

    Raises:
        SucroseError: ``strict`` and the config changed.
        CheckpointError: the record is from a newer format, or its random state is damaged.
    """
    path = str(trainer.ckpt_path)
    meta = read_record(checkpoint, path)
    if meta is None:
        if path not in _not_sucrose_warned:
            _not_sucrose_warned.add(path)
            warn_user(
                f"the checkpoint {path} loaded by scenario {ssc.name!r} was not written by sucrose: its "
                "config and random states are unknown (a resumed run may not repeat exactly)",
                SucroseWarning,
            )
        return
    action = "resuming" if fitting else "evaluating"
    text = drift(meta, ssc.name, ssc.hparams(), ssc.config_file.path, action=action)
    if text is not None:
        if strict and fitting:
            raise SucroseError(text + "\n(strict_config=True: refusing to resume)")
        warn_user(text, SucroseConfigWarning)
    if not fitting:
        return
    rng = meta.get("rng")
    ranks = meta.get("rng_ranks")
    if isinstance(ranks, list) and len(ranks) == trainer.world_size:
        rng = ranks[trainer.global_rank]
    elif trainer.world_size > 1 and trainer.is_global_zero and isinstance(rng, dict):
        warn_user(
            f"the checkpoint {path} holds the random states of one process; every one of the "
            f"{trainer.world_size} ranks gets them (per-rank seeds do not repeat exactly)",
            SucroseWarning,
        )
    if isinstance(rng, dict):
        try:
            _rng.restore_rng(rng)
        except Exception as err:
            raise CheckpointError(
                f"the checkpoint {path} resumed by scenario {ssc.name!r} has a damaged random state "
                f"({type(err).__name__}: {err}); resume from an older one (ssc.ckpts()) or check it "
                "with 'sucrose check --verify'"
            ) from err


def record(
    ssc: ScenarioLike, trainer: pl.Trainer, epochs: int, mid_epoch: bool, weights_only: bool
) -> dict[str, Any]:
    """The record stored under ``checkpoint["sucrose"]`` for a save happening now."""
    meta = ssc.meta(epochs, trainer.global_step)
    meta["rng"], ranks = gather_rng(trainer)
    if ranks is not None:
        meta["rng_ranks"] = ranks
    meta["mid_epoch"] = mid_epoch
    meta["weights_only"] = weights_only
    return meta


def epoch_finished(trainer: pl.Trainer) -> bool:
    """Whether the training epoch now ending ran to its last batch (``limit_train_batches``
    counted), rather than being cut short by ``max_steps`` or a stop signal."""
    loop = trainer.fit_loop.epoch_loop
    reached = getattr(loop, "_num_ready_batches_reached", None)
    if callable(reached):
        return bool(reached())
    return bool(getattr(loop.batch_progress, "is_last_batch", False))


def save_as_latest(
    callback: Any, trainer: pl.Trainer, candidates: dict[str, Any], save: Callable[[], None]
) -> None:
    """Run ``save`` (a save not among the callback's top k) as its latest state: named
    ``<tag>-latest``, kept as ``latest_model_path``, replacing the previous latest state."""
    previous = callback.latest_model_path
    callback._role = "latest"
    try:
        callback.latest_model_path = callback.format_checkpoint_name(candidates)
        save()
    finally:
        callback._role = ""
    callback._latest_step = trainer.global_step
    callback._drop_latest(trainer, previous)


def state_key_options(callback: Any) -> dict[str, Any]:
    """The options Lightning's ``ModelCheckpoint.state_key`` is made of (a stock callback's key)."""
    return {
        "monitor": callback.monitor,
        "mode": callback.mode,
        "every_n_train_steps": callback._every_n_train_steps,
        "every_n_epochs": callback._every_n_epochs,
        "train_time_interval": callback._train_time_interval,
    }


def keep_last(callback: Any) -> None:
    """``keep_last``: the store's retention rule on this callback's own files (its label only)."""
    if callback.keep_last is None:
        return
    store, label = callback.ssc.store, callback.label
    plan = store.retention(callback.keep_last, callback.FILE_EXTENSION, lambda lab: lab == label)
    store.delete(plan.delete)


def siblings(callback: Any, trainer: pl.Trainer) -> list[Any]:
    """The trainer's sucrose checkpoint callbacks of ``callback``'s scenario, in callback order."""
    store = callback.ssc.store
    return [
        cb
        for cb in trainer.callbacks  # type: ignore[attr-defined]
        if isinstance(cb, pl.callbacks.ModelCheckpoint)
        and getattr(getattr(cb, "ssc", None), "store", None) is store
    ]


def check_labels(callback: Any, trainer: pl.Trainer) -> None:
    """Refuse two callbacks of one scenario whose files would share names."""
    for other in siblings(callback, trainer):
        if other is not callback and other.label == callback.label:
            raise SucroseError(
                f"two checkpoint callbacks of scenario {callback.ssc.name!r} would write the same file "
                f"names (label {callback.label!r}); give one of them a tag, e.g. "
                "SucroseCheckpoint(ssc, tag='best', monitor='val_loss')"
            )


def write_record(callback: Any, trainer: pl.Trainer, checkpoint: dict[str, Any]) -> None:
    """Put the scenario's record into ``checkpoint``: once per save, by the callback that saves
    (or, for a save of the user's own, by the scenario's first callback)."""
    family = siblings(callback, trainer)
    writer = next((cb for cb in family if cb._saving), family[0] if family else callback)
    if writer is not callback:
        return
    epochs, step = callback._stamp()
    weights_only = callback.save_weights_only if callback._saving else "optimizer_states" not in checkpoint
    checkpoint[META_KEY] = record(callback.ssc, trainer, epochs, step is not None, weights_only)


def read_record_on_load(callback: Any, trainer: pl.Trainer, checkpoint: dict[str, Any]) -> None:
    """What a callback does with the checkpoint Lightning restores (see ``on_load_checkpoint``)."""
    from lightning.pytorch.trainer.states import TrainerFn

    fitting = trainer.state.fn == TrainerFn.FITTING
    adopt_stock_state(callback, checkpoint, "ModelCheckpoint" + repr(state_key_options(callback)))
    family = siblings(callback, trainer)
    if family and family[0] is not callback:
        return  # the scenario's record is handled once, by its first callback
    if fitting:
        callback.ssc.store.new_timeline()
    resume_record(callback.ssc, trainer, checkpoint, strict=callback.strict_config, fitting=fitting)


__all__ += [
    "META_KEY",
    "check_labels",
    "epoch_finished",
    "keep_last",
    "read_record_on_load",
    "record",
    "save_as_latest",
    "siblings",
    "state_key_options",
    "write_record",
]
