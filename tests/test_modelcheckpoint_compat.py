"""``SucroseCheckpoint`` against the behaviours Lightning's own ``ModelCheckpoint`` tests check.

Lightning defines what "ModelCheckpoint-compatible" means in
``tests/tests_pytorch/checkpointing/`` of ``Lightning-AI/pytorch-lightning``. Each of its tests
is mapped below to the test here that covers the same behaviour with a real ``Trainer`` on
``SucroseCheckpoint``, or to the reason it does not apply. Names and folders are sucrose's own
(``base_e3.ckpt``, ``_e0_s2``, ``.best``/``.best-latest``/``.weights`` labels, no ``-v1``), so
where Lightning asserts a file name, the test asserts the same *save* (epoch, global step,
contents) under sucrose's name. ``test_same_saves_as_stock`` also runs a stock
``ModelCheckpoint`` next to ``SucroseCheckpoint`` for a range of options and requires the same
sequence of saves (epoch, step, weights-only), scores and best-k state.

test_model_checkpoint.py
    test_model_checkpoint_state_key ................ test_state_key
    test_model_checkpoint_score_and_ckpt ........... test_score_and_checkpoint_contents
    test_model_checkpoint_score_and_ckpt_val_check_interval
                                                     test_score_and_contents_with_val_check_interval
    test_model_checkpoint_with_non_string_input .... n/a: dirpath is the scenario's folder (fixed)
    test_model_checkpoint_to_yaml .................. test_to_yaml
    test_model_checkpoint_path ..................... n/a: folder comes from the scenario, not the logger
    test_pickling .................................. test_pickling
    test_model_checkpoint_no_extraneous_invocations  test_one_state_dict_and_one_save_per_checkpoint
                                                     (the ddp_spawn half: test_lightning_ddp.py)
    test_model_checkpoint_format_checkpoint_name ... n/a: file names (sucrose's: test_lightning.py)
    test_model_checkpoint_file_extension ........... test_file_extension_is_the_workspace_setting
    test_model_checkpoint_save_last ................ test_save_last (True and "link"),
                                                     test_save_last_follows_every_saved_file
    test_model_checkpoint_save_last_as_link_not_local  n/a: the scenario's folder is always local
    test_model_checkpoint_link_checkpoint(_relative_path)  n/a: Lightning's static helper, inherited
                                                     as is (its use: test_save_last)
    test_invalid_top_k, test_none_monitor_top_k, test_invalid_every_n_epochs,
    test_invalid_every_n_train_steps, test_invalid_trigger_combination,
    test_none_every_n_train_steps_val_epochs, test_model_checkpoint_mode_options
                                                     test_invalid_options_raise_lightnings_errors
    test_none_monitor_not_alternating .............. test_top1_without_monitor_keeps_one_file
    test_model_checkpoint_save_last_none_monitor ... test_save_last_without_monitor
    test_model_checkpoint_every_n_epochs ........... test_every_n_epochs
    test_ckpt_every_n_train_steps .................. test_every_n_train_steps
    test_model_checkpoint_train_time_interval ...... test_train_time_interval
    test_model_checkpoint_topk_zero ................ test_top_k_zero_keeps_only_last
    test_model_checkpoint_topk_all ................. test_top_k_all_tracks_every_score
    test_ckpt_metric_names ......................... n/a: metric values in file names
    test_default_checkpoint_behavior ............... test_default_saves_every_epoch_and_keeps_all
    test_model_checkpoint_save_last_checkpoint_contents  test_last_holds_the_newest_state
    test_checkpointing_with_nan_as_first ........... test_nan_first_score
    test_checkpoint_repeated_strategy .............. test_repeated_fit_and_test_from_best
    test_checkpoint_repeated_strategy_extended ..... test_repeated_fit_validate_test_add_nothing
    test_configure_model_checkpoint ................ test_trainer_checkpoint_callback_wiring
    test_val_check_interval_checkpoint_files ....... test_score_and_contents_with_val_check_interval
    test_current_score ............................. test_current_score_saved_in_each_file
    test_current_score_when_nan .................... test_nan_score_becomes_inf
    test_hparams_type .............................. test_score_and_checkpoint_contents
    test_ckpt_version_after_rerun_new_trainer ...... test_rerun_without_resume_moves_aside_never_v1
    test_ckpt_version_after_rerun_same_trainer ..... test_second_fit_on_the_same_trainer_continues
    test_ckpt_version_counter_disabled_after_rerun_new_trainer
                                                     test_rerun_without_resume_moves_aside_never_v1
    test_check_val_every_n_epochs_top_k_integration  test_check_val_every_n_epoch
    test_model_checkpoint_saveload_ckpt ............ test_state_dict_round_trip
    test_resume_training_preserves_old_ckpt_last ... test_resume_from_stock_keeps_its_files
    test_save_last_saves_correct_last_model_path ... test_save_last (state inside last.ckpt)
    test_save_last_versioning ...................... test_rerun_without_resume_moves_aside_never_v1
    test_none_monitor_saves_correct_best_model_path  test_save_last_without_monitor (state inside)
    test_last_global_step_saved .................... test_top_k_zero_keeps_only_last
    test_save_last_every_n_epochs_interaction ...... test_same_saves_as_stock[save_last-no-top-k]
    test_train_epoch_end_ckpt_with_no_validation ... test_same_saves_as_stock (val / no val cases)
    test_resume_and_old_checkpoint_files_remain .... test_resume_keeps_the_file_it_resumed_from;
                                                     other folder: test_resume_from_stock_keeps_its_files
    test_find_last_checkpoints ..................... test_ckpt_path_last_and_best
                                                     (sucrose: the most advanced file, documented)
    test_expand_home, test_save_last_cli ........... n/a: dirpath fixed; argument parsing untouched

Two files of ``tests/tests_pytorch/callbacks/`` test ModelCheckpoint too:

test_model_checkpoint_manual_opt.py (manual optimization)
    test_model_checkpoint_manual_opt(_warning) ..... test_manual_optimization
    test_model_checkpoint_manual_opt_train_time_interval,
    ..._broadcasts_skip_time_unconditionally ....... test_same_saves_as_stock[manual-*] (whatever the
                                                     installed Lightning does, sucrose does the same)
test_model_checkpoint_edge_cases.py (saves deferred until the monitored metric is fresh)
    test_checkpoint_defers_with_mid_epoch_validation  test_same_saves_as_stock[steps-deferred-*]
    test_time_interval_defers_across_epoch_until_first_validation
                                                     test_same_saves_as_stock[time-deferred-*]

test_checkpoint_callback_frequency.py
    test_disabled_checkpointing .................... test_trainer_checkpoint_callback_wiring
    test_default_checkpoint_freq ................... test_default_checkpoint_frequency
    test_top_k ..................................... test_top_k_save_count
    test_top_k_ddp ................................. n/a: 2 GPUs (sucrose's DDP: test_lightning_ddp.py)

test_trainer_checkpoint.py
    test_finetuning_with_ckpt_path ................. test_finetuning_from_best
    test_trainer_save_checkpoint_storage_options ... test_storage_options_and_weights_only_pass_through

Also covered (Lightning options without a dedicated test in the files read):
``save_on_exception`` (test_save_on_exception, test_monitored_save_on_exception_is_the_latest_state),
``verbose`` (test_verbose_messages), a missing ``monitor`` key (test_missing_monitor_key),
``max_steps`` ending mid-epoch (test_max_steps_mid_epoch), ``save_on_train_epoch_end`` and
``val_check_interval`` in steps (test_same_saves_as_stock), ``state_dict`` restored on resume
(test_resume_restores_best_k_state), several callbacks (test_two_callbacks_keep_their_own_state).

Where sucrose deliberately differs (documented in docs/lightning.md), the test asserts sucrose's
behaviour and says so: names and folders, no ``-v1`` (files of an abandoned run move to
``.abandoned/``), keep-all without ``monitor``, a monitored callback's extra latest-state file,
``ckpt_path="last"`` = the most advanced checkpoint, a stock callback's best-k state adopted
from another folder, the extension from ``workspace.lightning_ckpts_extension``.
"""

from __future__ import annotations

import logging
import os
import pickle
import re
from datetime import timedelta
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import cloudpickle
import lightning.pytorch as pl
import lit_helpers as H
import pytest
import torch
import yaml
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from torch.utils.data import DataLoader, TensorDataset

import sucrose_lightning as sucrose
from sucrose_lightning import SucroseCheckpoint
from sucrose_lightning.errors import SucroseError

LIGHTNING_2_6 = tuple(int(p) for p in pl.__version__.split(".")[:2]) >= (2, 6)

pytestmark = [
    pytest.mark.filterwarnings("ignore::lightning.fabric.utilities.warnings.PossibleUserWarning"),
    pytest.mark.filterwarnings("ignore:.*dataloader is not resumable.*"),
    pytest.mark.filterwarnings("ignore:.*not written by sucrose.*"),
    pytest.mark.filterwarnings("ignore:.*manual optimization and every_n_train_steps.*"),
    pytest.mark.filterwarnings("ignore:.*could not find the monitored key.*"),
    pytest.mark.filterwarnings("ignore:.*exists and is not empty.*"),
    pytest.mark.filterwarnings("ignore:.*never read during fit.*"),
]

H.quiet()

BATCHES = 4  # 32 samples, batch size 8


class Save(NamedTuple):
    name: str
    epoch: int
    step: int
    weights_only: bool


class Spy(pl.Trainer):
    """A trainer recording every ``save_checkpoint`` call (links of ``save_last="link"`` are not saves)."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.saves: list[Save] = []

    def save_checkpoint(self, filepath: Any, weights_only: bool = False, storage_options: Any = None) -> None:
        self.saves.append(Save(Path(filepath).name, self.current_epoch, self.global_step, weights_only))
        super().save_checkpoint(filepath, weights_only, storage_options)


class Scripted(H.TinyModule):
    """TinyModule logging scripted scores: ``score`` per epoch (in validation, or at the end of the
    training epoch without validation), ``step_score`` falling every step, ``epoch_score`` = epoch."""

    scores: ClassVar[list[float]] = [3.0, 1.0, 2.0, 0.5, 4.0]

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        self.log("step_score", 10.0 - 0.01 * self.global_step)
        self.log("epoch_score", float(self.current_epoch))
        return super().training_step(batch, batch_idx)

    def _log_score(self) -> None:
        self.log("score", float(self.scores[self.current_epoch % len(self.scores)]))

    def on_validation_epoch_end(self) -> None:
        self._log_score()

    def test_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        self.log("test_loss", torch.nn.functional.mse_loss(self(x), y))

    def on_train_epoch_end(self) -> None:
        if not self.trainer.val_dataloaders:
            self._log_score()


class WithScheduler(Scripted):
    def configure_optimizers(self) -> Any:
        opt = torch.optim.SGD(self.parameters(), lr=0.1)
        return [opt], [torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)]


class Manual(H.TinyModule):
    """Manual optimization; ``manual_loss`` is 1, 1, 0, 1 over an epoch's batches."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.automatic_optimization = False

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = torch.nn.functional.mse_loss(self(x), y)
        self.log("manual_loss", 0.0 if batch_idx == 2 else 1.0)
        opt = self.optimizers()
        opt.zero_grad()  # type: ignore[union-attr]
        self.manual_backward(loss)
        opt.step()  # type: ignore[union-attr]
        return loss


def data(val: bool = True) -> tuple[DataLoader, DataLoader | None]:
    g = torch.Generator().manual_seed(1234)
    x = torch.randn(32, 4, generator=g)
    ds = TensorDataset(x, x.sum(dim=1, keepdim=True))
    return DataLoader(ds, batch_size=8, shuffle=True), (DataLoader(ds, batch_size=8) if val else None)


def fit(
    callbacks: list[Any],
    module: type[H.TinyModule] = Scripted,
    epochs: int = 2,
    val: bool = True,
    ckpt: Any = None,
    model: H.TinyModule | None = None,
    **kw: Any,
) -> Spy:
    pl.seed_everything(0, verbose=False)
    model = model if model is not None else module(in_dim=4, hidden=6, lr=0.1)
    train, val_dl = data(val)
    kw.setdefault("num_sanity_val_steps", 0)
    t = Spy(
        accelerator="cpu",
        devices=1,
        max_epochs=epochs,
        callbacks=callbacks,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        log_every_n_steps=1,
        **kw,
    )
    t.fit(model, train, val_dl, ckpt_path=ckpt)
    return t


@pytest.fixture
def ssc(tmp_path: Path) -> Any:
    scenario = sucrose.scenario(H.write_workspace(tmp_path / "ws"), "base")
    yield scenario
    scenario.close()


def names(ssc: Any) -> list[str]:
    return sorted(p.name for p in ssc.ckpts_dir.iterdir() if not p.name.startswith("."))


def load(path: Any) -> dict[str, Any]:
    return torch.load(path, weights_only=False, map_location="cpu")


def state(path: Any, callback: ModelCheckpoint) -> dict[str, Any]:
    return load(path)["callbacks"][callback.state_key]


# --------------------------------------------------------------------------- against a stock callback


def saves(t: Spy) -> list[tuple[int, int, bool]]:
    """(epoch, step, weights_only) of every save but sucrose's extra latest-state ones."""
    return [(s.epoch, s.step, s.weights_only) for s in t.saves if "-latest" not in s.name]


@pytest.mark.parametrize(
    ("options", "module", "epochs", "val", "trainer_kw"),
    [
        pytest.param({}, Scripted, 2, True, {}, id="default"),
        pytest.param({}, Scripted, 2, False, {}, id="default-no-val"),
        pytest.param({"every_n_epochs": 2}, Scripted, 3, True, {}, id="every_n_epochs"),
        pytest.param({"every_n_train_steps": 3}, Scripted, 2, True, {}, id="every_n_train_steps"),
        pytest.param({"train_time_interval": timedelta(0)}, Scripted, 1, True, {}, id="time-interval"),
        pytest.param(
            {"monitor": "score", "save_top_k": 2},
            Scripted,
            2,
            True,
            {"val_check_interval": 0.5},
            id="val-0.5",
        ),
        pytest.param(
            {"monitor": "val_loss"}, Scripted, 2, True, {"val_check_interval": 3}, id="val-every-3-steps"
        ),
        pytest.param(
            {"monitor": "score", "save_top_k": -1},
            Scripted,
            3,
            True,
            {"check_val_every_n_epoch": 2},
            id="cve2",
        ),
        pytest.param(
            {"monitor": "step_score", "save_on_train_epoch_end": True},
            Scripted,
            2,
            True,
            {},
            id="on-train-epoch-end",
        ),
        pytest.param({"monitor": "score", "save_top_k": 1}, Scripted, 5, False, {}, id="top1-no-val"),
        pytest.param(
            {"monitor": "score", "mode": "max", "save_top_k": 2}, Scripted, 5, True, {}, id="top2-max"
        ),
        pytest.param(
            {"monitor": "val_loss", "every_n_train_steps": 2}, Scripted, 2, True, {}, id="deferred-to-val"
        ),
        pytest.param(
            {"monitor": "score", "mode": "max", "every_n_train_steps": 1, "every_n_epochs": 0},
            Scripted,
            2,
            True,
            {"val_check_interval": 0.5},
            id="steps-deferred-to-mid-epoch-val",
        ),
        pytest.param(
            {"monitor": "score", "train_time_interval": timedelta(0), "save_on_train_epoch_end": False},
            Scripted,
            3,
            True,
            {"check_val_every_n_epoch": 2},
            id="time-deferred-to-val-every-2-epochs",
        ),
        pytest.param({"save_last": True, "every_n_train_steps": 3}, Scripted, 2, True, {}, id="save_last"),
        pytest.param(
            {"save_last": True, "save_top_k": 0, "every_n_epochs": 0},
            Scripted,
            2,
            False,
            {},
            id="save_last-no-top-k",
        ),
        pytest.param({"save_last": "link", "monitor": "score"}, Scripted, 3, True, {}, id="save_last-link"),
        pytest.param({}, Scripted, 5, True, {"max_steps": 6}, id="max_steps"),
        pytest.param(
            {"save_weights_only": True, "monitor": "val_loss"}, Scripted, 2, True, {}, id="weights-only"
        ),
        pytest.param(
            {"every_n_train_steps": 2, "monitor": "manual_loss"}, Manual, 1, False, {}, id="manual-steps"
        ),
        pytest.param(
            {"train_time_interval": timedelta(0), "save_top_k": 0, "save_last": True},
            Manual,
            1,
            False,
            {},
            id="manual-time",
        ),
    ],
)
def test_same_saves_as_stock(ssc, tmp_path, options, module, epochs, val, trainer_kw):
    stock = ModelCheckpoint(dirpath=tmp_path / "stock", **options)
    ours = SucroseCheckpoint(ssc, **options)
    t_stock = fit([stock], module, epochs, val, **trainer_kw)
    t_ours = fit([ours], module, epochs, val, **trainer_kw)
    assert saves(t_ours) == saves(t_stock)
    assert t_ours.global_step == t_stock.global_step
    assert ours.best_model_score == stock.best_model_score
    assert ours.current_score == stock.current_score
    assert sorted(map(float, ours.best_k_models.values())) == sorted(map(float, stock.best_k_models.values()))
    assert bool(ours.last_model_path) == bool(stock.last_model_path)
    assert bool(ours.best_model_path) == bool(stock.best_model_path)
    if stock.best_model_path and (options.get("monitor") or stock.save_top_k == 1):
        # the same save is the best one: same step, same weights
        a, b = load(stock.best_model_path), load(ours.best_model_path)
        assert (a["epoch"], a["global_step"]) == (b["epoch"], b["global_step"])
        assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])


# --------------------------------------------------------------------------- options


def test_state_key(ssc, tmp_path):
    # Lightning's key (a subclass's carries its class name, as in Lightning); a tagged callback
    # (monitored: "best" by default) adds its tag so that several coexist in one checkpoint
    stock = ModelCheckpoint(dirpath=tmp_path, monitor="val_loss").state_key
    assert stock.startswith("ModelCheckpoint{")
    assert SucroseCheckpoint(ssc, monitor="val_loss", tag="x").state_key == (
        "SucroseCheckpoint" + stock[len("ModelCheckpoint") : -1] + ", 'tag': 'x'}"
    )
    plain = SucroseCheckpoint(ssc).state_key
    assert (
        plain == "SucroseCheckpoint" + ModelCheckpoint(dirpath=tmp_path).state_key[len("ModelCheckpoint") :]
    )


def test_invalid_options_raise_lightnings_errors(ssc):
    for bad, match in [
        ({"save_top_k": -3}, "Must be >= -1"),
        ({"save_top_k": 3}, r"save_top_k=3, monitor=None\) is not a valid"),
        ({"every_n_epochs": -3}, "Must be >= 0"),
        ({"every_n_train_steps": -3}, "Must be >= 0"),
        ({"every_n_train_steps": 1, "every_n_epochs": 2}, "Combination of parameters every_n_train_steps"),
        ({"train_time_interval": timedelta(minutes=1), "every_n_epochs": 2}, "Combination of parameters"),
        (
            {"train_time_interval": timedelta(minutes=1), "every_n_train_steps": 2},
            "Combination of parameters",
        ),
        ({"mode": "unknown_option"}, "`mode` can be .* but got unknown_option"),
    ]:
        with pytest.raises(MisconfigurationException, match=match):
            SucroseCheckpoint(ssc, **bad)
    for fine in [
        {"save_top_k": -1},
        {"save_top_k": 0},
        {"save_top_k": 1},
        {"every_n_epochs": 0},
        {"every_n_train_steps": 0, "every_n_epochs": 3},
        {"every_n_train_steps": 4, "every_n_epochs": 0},
        {"every_n_train_steps": 0, "every_n_epochs": 0, "train_time_interval": timedelta(minutes=1)},
    ]:
        SucroseCheckpoint(ssc, **fine)
    default = SucroseCheckpoint(ssc)
    assert (default.every_n_epochs, default._every_n_train_steps) == (1, 0)
    with pytest.raises(SucroseError, match="names its files itself"):  # sucrose: the folder is fixed
        SucroseCheckpoint(ssc, dirpath="elsewhere")


def test_pickling(ssc):
    callback = SucroseCheckpoint(ssc, monitor="val_loss", save_top_k=2)
    for module in (pickle, cloudpickle):
        again = module.loads(module.dumps(callback))
        mine, theirs = vars(callback), vars(again)
        assert {k: v for k, v in mine.items() if k != "ssc"} == {
            k: v for k, v in theirs.items() if k != "ssc"
        }
        assert (again.ssc.name, again.ssc.ckpts_dir) == (ssc.name, ssc.ckpts_dir)


def test_file_extension_is_the_workspace_setting(tmp_path):
    # Lightning: a subclass's FILE_EXTENSION; sucrose: workspace.lightning_ckpts_extension (documented)
    ws = H.write_workspace(tmp_path / "ws", H.CONFIG + "\nworkspace:\n  lightning_ckpts_extension: .tpkc\n")
    ssc = sucrose.scenario(ws, "base")
    t = fit([SucroseCheckpoint(ssc, monitor="step_score", save_top_k=1, save_last=True)], max_steps=1)
    assert names(ssc) == ["base_e0_s1.best.tpkc", "last.tpkc"]  # max_steps=1: one step, no epoch finished
    assert t.checkpoint_callback.best_model_path.endswith("base_e0_s1.best.tpkc")
    assert ssc.last_ckpt().endswith("base_e0_s1.best.tpkc")
    ssc.close()


# --------------------------------------------------------------------------- scores and contents


@pytest.mark.parametrize(("monitor", "val"), [("score", True), ("epoch_score", False)])
def test_score_and_checkpoint_contents(ssc, monitor, val):
    callback = SucroseCheckpoint(ssc, monitor=monitor, save_top_k=-1)
    fit([callback], WithScheduler, 3, val)
    assert names(ssc) == ["base_e1.best.ckpt", "base_e2.best.ckpt", "base_e3.best.ckpt"]
    for epoch in range(3):
        chk = load(ssc.ckpts_dir / f"base_e{epoch + 1}.best.ckpt")
        assert (chk["epoch"], chk["global_step"]) == (epoch, BATCHES * (epoch + 1))
        mine = chk["callbacks"][callback.state_key]
        assert mine["dirpath"] == callback.dirpath and mine["monitor"] == monitor
        expected = Scripted.scores[epoch] if monitor == "score" else float(epoch)
        assert float(mine["current_score"]) == pytest.approx(expected)
        # saved after the epoch's scheduler step
        assert chk["lr_schedulers"][0]["_step_count"] == epoch + 2
        assert chk["lr_schedulers"][0]["_last_lr"][0] == pytest.approx(0.1 * 0.5 ** (epoch + 1))
        assert type(chk["hyper_parameters"]) is dict  # not an AttributeDict


def test_score_and_contents_with_val_check_interval(ssc):
    callback = SucroseCheckpoint(ssc, monitor="val_loss", save_top_k=-1)
    t = fit([callback], WithScheduler, 2, val_check_interval=0.5)
    # two validations per epoch: mid-epoch after step 2, at the epoch's end after step 4
    assert names(ssc) == [
        "base_e0_s2.best.ckpt",
        "base_e1.best.ckpt",
        "base_e1_s6.best.ckpt",
        "base_e2.best.ckpt",
    ]
    assert [(s.epoch, s.step) for s in t.saves] == [(0, 2), (0, 4), (1, 6), (1, 8)]
    for name, (epoch, step), epoch_end in [
        ("base_e0_s2.best.ckpt", (0, 2), False),
        ("base_e1.best.ckpt", (0, 4), True),
        ("base_e1_s6.best.ckpt", (1, 6), False),
        ("base_e2.best.ckpt", (1, 8), True),
    ]:
        chk = load(ssc.ckpts_dir / name)
        assert (chk["epoch"], chk["global_step"]) == (epoch, step)
        assert chk["lr_schedulers"][0]["_step_count"] == epoch + 1 + epoch_end
        assert chk["sucrose"]["mid_epoch"] is not epoch_end
    assert len(callback.best_k_models) == 4


def test_current_score_saved_in_each_file(ssc):
    class Rising(Scripted):
        scores: ClassVar[list[float]] = [0.1, 0.2, 0.3]

    callback = SucroseCheckpoint(ssc, monitor="score", save_top_k=3)
    fit([callback], Rising, 3)
    assert float(callback.current_score) == pytest.approx(0.3)
    got = sorted(float(state(p, callback)["current_score"]) for p in ssc.ckpts_dir.glob("*.ckpt"))
    assert got == pytest.approx([0.1, 0.2, 0.3])


@pytest.mark.parametrize("mode", ["min", "max"])
def test_nan_score_becomes_inf(ssc, mode):
    class NaN(Scripted):
        scores: ClassVar[list[float]] = [float("nan")]

    callback = SucroseCheckpoint(ssc, monitor="score", mode=mode, save_top_k=1)
    fit([callback], NaN, 1)
    expected = float("inf" if mode == "min" else "-inf")
    assert callback.best_model_score == expected and callback.current_score == expected


@pytest.mark.parametrize("mode", ["min", "max"])
def test_nan_first_score(ssc, mode):
    class NaNFirst(Scripted):
        scores: ClassVar[list[float]] = [
            float("nan"),
            *([5.0, 7.0, 8.0] if mode == "max" else [8.0, 7.0, 5.0]),
        ]

    callback = SucroseCheckpoint(ssc, monitor="score", mode=mode, save_top_k=1)
    t = fit([callback], NaNFirst, 4)
    assert len(t.saves) == 4  # every epoch improves on the one before: no latest-state file either
    assert callback.best_model_score == (5 if mode == "min" else 8)
    assert names(ssc) == ["base_e4.best.ckpt"]


def test_top_k_all_tracks_every_score(ssc):
    callback = SucroseCheckpoint(ssc, monitor="epoch_score", mode="max", save_top_k=-1)
    fit([callback], epochs=3)
    assert callback.best_model_path == str(ssc.ckpts_dir / "base_e3.best.ckpt")
    assert callback.best_model_score == 2
    assert set(callback.best_k_models) == {str(ssc.ckpts_dir / f"base_e{i}.best.ckpt") for i in (1, 2, 3)}
    assert len(names(ssc)) == 3
    assert callback.kth_best_model_path == str(ssc.ckpts_dir / "base_e1.best.ckpt")


@pytest.mark.parametrize(
    ("k", "epochs", "val_check_interval", "expected"),
    [(1, 1, 1.0, 1), (2, 2, 1.0, 2), (2, 1, 0.5, 2), (2, 2, 0.5, 4)],
)
@pytest.mark.parametrize("save_last", [False, True, "link"])
def test_top_k_save_count(ssc, k, epochs, val_check_interval, expected, save_last):
    callback = SucroseCheckpoint(ssc, monitor="step_score", save_top_k=k, save_last=save_last)
    t = fit([callback], epochs=epochs, val_check_interval=val_check_interval)
    # save_last=True saves a copy each time; "link" links instead of saving
    assert len(t.saves) == expected * (2 if save_last is True else 1)
    assert len([n for n in names(ssc) if n.endswith(".best.ckpt")]) == min(k, expected)
    assert not any("-latest" in s.name for s in t.saves)  # step_score improves every time


@pytest.mark.parametrize(
    ("epochs", "val_check_interval", "expected"), [(1, 1.0, 1), (2, 1.0, 2), (1, 0.5, 2), (2, 0.5, 4)]
)
def test_default_checkpoint_frequency(ssc, epochs, val_check_interval, expected):
    t = fit(ssc.callbacks(), epochs=epochs, val_check_interval=val_check_interval, limit_val_batches=1)
    assert len(t.saves) == expected
    assert len(ssc.ckpts()) == expected  # sucrose keeps every one without monitor (documented)


def test_one_state_dict_and_one_save_per_checkpoint(ssc):
    class Counting(SucroseCheckpoint):
        calls = 0

        def state_dict(self) -> dict[str, Any]:
            Counting.calls += 1
            return super().state_dict()

    callback = Counting(ssc, monitor="step_score", save_top_k=-1)
    t = fit([callback], epochs=3)
    assert Counting.calls == len(t.saves) == 3
    assert callback.best_model_path and callback.best_model_score is not None


# --------------------------------------------------------------------------- triggers


@pytest.mark.parametrize("every_n_epochs", [0, 1, 2, 3])
def test_every_n_epochs(ssc, every_n_epochs):
    fit(ssc.callbacks(every_n_epochs=every_n_epochs), epochs=5, limit_train_batches=1, limit_val_batches=1)
    expected = [e for e in range(1, 6) if every_n_epochs and e % every_n_epochs == 0]
    assert names(ssc) == sorted(f"base_e{e}.ckpt" for e in expected)


def test_every_n_train_steps(ssc):
    t = fit(ssc.callbacks(every_n_train_steps=3, every_n_epochs=0), epochs=3)
    assert [s.step for s in t.saves] == [3, 6, 9, 12]
    assert [c.step for c in ssc.ckpts()] == [3, 6, 9, 12]


@pytest.mark.parametrize(("interval", "expected"), [(timedelta(0), 2 * BATCHES), (timedelta(days=1), 0)])
def test_train_time_interval(ssc, interval, expected):
    t = fit(ssc.callbacks(train_time_interval=interval), epochs=2)
    assert len(t.saves) == len(ssc.ckpts()) == expected
    assert all(c.step is not None for c in ssc.ckpts())


def test_check_val_every_n_epoch(ssc):
    fit([SucroseCheckpoint(ssc, monitor="epoch_score", save_top_k=-1)], epochs=5, check_val_every_n_epoch=2)
    assert names(ssc) == ["base_e2.best.ckpt", "base_e4.best.ckpt"]


def test_max_steps_mid_epoch(ssc):
    # a run ended by max_steps half-way through an epoch saves a mid-epoch file (Lightning's
    # "epoch=1-step=6"), not a claim that 2 epochs finished; resuming continues without moving anything
    t = fit(ssc.callbacks(), epochs=5, max_steps=6)
    assert [(s.epoch, s.step) for s in t.saves] == [(0, 4), (1, 6)]
    assert names(ssc) == ["base_e1.ckpt", "base_e1_s6.ckpt"]
    assert load(ssc.last_ckpt())["sucrose"]["mid_epoch"] is True
    t2 = fit(ssc.callbacks(), epochs=5, max_steps=10, ckpt=ssc.last_ckpt())
    assert t2.global_step == 10
    assert names(ssc) == ["base_e1.ckpt", "base_e1_s6.ckpt", "base_e2.ckpt", "base_e2_s10.ckpt"]
    assert not ssc.layout.abandoned_dir.exists()


def test_manual_optimization(ssc):
    callback = SucroseCheckpoint(ssc, monitor="manual_loss", every_n_train_steps=1, save_top_k=1)
    if LIGHTNING_2_6:  # Lightning's own warning, new in 2.6
        with pytest.warns(UserWarning, match="manual optimization and every_n_train_steps"):
            t = fit([callback], Manual, 1, val=False)
    else:
        t = fit([callback], Manual, 1, val=False)
    assert [s.step for s in t.saves if "-latest" not in s.name] == [1, 3]  # 1, 1, 0, 1: steps 1 and 3 enter
    assert callback.best_model_path.endswith("base_e0_s3.best.ckpt")
    assert load(callback.best_model_path)["global_step"] == 3
    # sucrose: the newest state (step 4, not among the top 1) is kept as the latest file
    assert names(ssc) == ["base_e0_s3.best.ckpt", "base_e0_s4.best-latest.ckpt"]


# --------------------------------------------------------------------------- save_last, top-k 0


@pytest.mark.parametrize("save_last", [True, "link"])
def test_save_last(ssc, save_last):
    callback = SucroseCheckpoint(ssc, monitor="step_score", save_top_k=-1, save_last=save_last)
    fit([callback], epochs=3)
    last = ssc.ckpts_dir / "last.ckpt"
    assert callback.last_model_path == str(last)
    assert names(ssc) == ["base_e1.best.ckpt", "base_e2.best.ckpt", "base_e3.best.ckpt", "last.ckpt"]
    assert last.is_symlink() is (save_last == "link")
    assert os.path.realpath(last) == os.path.realpath(callback._last_checkpoint_saved)
    assert state(last, callback)["last_model_path"] == str(last)
    assert ssc.last_ckpt().endswith("base_e3.best.ckpt")  # last.ckpt is never a resume candidate


def test_save_last_follows_every_saved_file(ssc, tmp_path):
    # Lightning: "a last.ckpt copy whenever a checkpoint file gets saved". A stock monitored
    # callback saves nothing when a score is not among the top k, so its last.ckpt stays behind;
    # sucrose's monitored callback saves its latest state then (documented), and last.ckpt follows
    options = {"monitor": "score", "save_top_k": 1, "save_last": True}
    stock = fit([ModelCheckpoint(dirpath=tmp_path / "stock", **options)], Scripted, 5)
    ours = fit([SucroseCheckpoint(ssc, **options)], Scripted, 5)  # scores 3, 1, 2, 0.5, 4
    # Lightning 2.6 writes a stock last.ckpt only after a saved file; 2.5 wrote one at every trigger
    assert [s.step for s in stock.saves if s.name == "last.ckpt"] == (
        [4, 8, 16] if LIGHTNING_2_6 else [4, 8, 12, 16, 20]
    )
    assert [s.step for s in ours.saves if s.name == "last.ckpt"] == [4, 8, 12, 16, 20]
    assert [s.step for s in ours.saves if s.name != "last.ckpt"] == [4, 8, 12, 16, 20]
    assert load(ssc.ckpts_dir / "last.ckpt")["global_step"] == 20
    assert names(ssc) == ["base_e4.best.ckpt", "base_e5.best-latest.ckpt", "last.ckpt"]


def test_save_last_without_monitor(ssc):
    callback = SucroseCheckpoint(ssc, save_last=True)
    fit([callback], epochs=2)
    assert callback.monitor is None
    assert callback.best_model_path == str(ssc.ckpts_dir / "base_e2.ckpt")
    assert callback.last_model_path == str(ssc.ckpts_dir / "last.ckpt")
    assert callback.best_model_score is None
    assert callback.best_k_models == {} and callback.kth_best_model_path == ""
    assert names(ssc) == ["base_e1.ckpt", "base_e2.ckpt", "last.ckpt"]
    assert (ssc.ckpts_dir / "last.ckpt").is_file()
    assert state(callback.best_model_path, callback)["best_model_path"] == callback.best_model_path


def test_last_holds_the_newest_state(ssc):
    callback = SucroseCheckpoint(ssc, monitor="step_score", save_top_k=3, save_last=True)
    fit([callback], epochs=3)
    newest, last = load(ssc.ckpts_dir / "base_e3.best.ckpt"), load(ssc.ckpts_dir / "last.ckpt")
    assert (newest["epoch"], newest["global_step"]) == (last["epoch"], last["global_step"])
    assert newest["callbacks"][callback.state_key] == last["callbacks"][callback.state_key]
    assert all(torch.equal(newest["state_dict"][k], last["state_dict"][k]) for k in newest["state_dict"])


def test_top_k_zero_keeps_only_last(ssc):
    callback = SucroseCheckpoint(ssc, save_top_k=0, save_last=True)
    fit([callback], epochs=2)
    assert callback.best_model_path == "" and callback.best_model_score is None
    assert callback.best_k_models == {} and callback.kth_best_model_path == ""
    assert names(ssc) == ["last.ckpt"]
    assert callback.last_model_path == str(ssc.ckpts_dir / "last.ckpt")
    assert not os.path.islink(callback.last_model_path)
    # nothing to save: the step counter of the last save does not move
    nothing = SucroseCheckpoint(ssc, save_top_k=0, monitor="foo", tag="none")
    nothing._save_topk_checkpoint(None, {"foo": torch.tensor(123)})  # type: ignore[arg-type]
    nothing._save_last_checkpoint(None, {"foo": torch.tensor(123)})  # type: ignore[arg-type]
    assert nothing._last_global_step_saved == 0


def test_top1_without_monitor_keeps_one_file(ssc):
    seen: list[list[str]] = []

    class Look(pl.Callback):
        def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
            if trainer.current_epoch > 0:
                seen.append(names(ssc))

    fit([SucroseCheckpoint(ssc, save_top_k=1), Look()], epochs=3, limit_val_batches=0)
    assert seen == [["base_e1.ckpt"], ["base_e2.ckpt"]]
    assert names(ssc) == ["base_e3.ckpt"]


def test_default_saves_every_epoch_and_keeps_all(ssc):
    t = fit(ssc.callbacks(), epochs=3)
    assert t.saves == [Save(f"base_e{e}.ckpt", e - 1, BATCHES * e, False) for e in (1, 2, 3)]
    # Lightning's default (save_top_k=1) keeps the last only; sucrose keeps all without monitor (documented)
    assert names(ssc) == ["base_e1.ckpt", "base_e2.ckpt", "base_e3.ckpt"]
    _, val = data()
    assert len(t.test(dataloaders=val, verbose=False)) == 1
    assert t.ckpt_path == str(ssc.ckpts_dir / "base_e3.ckpt")  # "best" without monitor: the newest save


# --------------------------------------------------------------------------- state, resume


def test_to_yaml(ssc, tmp_path):
    for k in (-1, 0, 1, 2):
        callback = SucroseCheckpoint(ssc, monitor="step_score", save_top_k=k, tag=f"k{k + 1}")
        fit([callback], epochs=2)
        callback.to_yaml(tmp_path / f"best{k}.yaml")
        got = yaml.safe_load((tmp_path / f"best{k}.yaml").read_text())
        assert got == {p: float(v) for p, v in callback.best_k_models.items()}
    callback.to_yaml()  # default: best_k_models.yaml in the scenario's folder
    assert (ssc.ckpts_dir / "best_k_models.yaml").is_file()
    assert ssc.last_ckpt() is not None  # a stray yaml file disturbs nothing


def test_state_dict_round_trip(ssc, tmp_path):
    written = {
        "best_model_path": "epoch=10-step=1436.ckpt",
        "best_model_score": torch.tensor(2.246),
        "best_k_models": {"epoch=10-step=1436.ckpt": torch.tensor(2.246)},
        "kth_best_model_path": "epoch=10-step=1436.ckpt",
        "kth_value": torch.tensor(2.246),
        "last_model_path": "last2245.ckpt",
    }
    cb_write = SucroseCheckpoint(ssc, save_last=True)
    for key, value in written.items():
        setattr(cb_write, key, value)
    saved = cb_write.state_dict()
    assert all(saved[k] == v for k, v in written.items())
    assert saved["latest_model_path"] == ""
    # Lightning restores only best_model_path from another folder (with a warning); sucrose adopts
    # the whole best-k state so that switching from a stock callback keeps it (documented)
    other = sucrose.scenario(H.write_workspace(tmp_path / "other"), "base")
    cb_restore = SucroseCheckpoint(other, save_last=True)
    cb_restore.load_state_dict({**saved, "dirpath": str(tmp_path / "elsewhere")})
    for key in written:
        assert getattr(cb_restore, key) == written[key], key
    assert cb_restore.dirpath == str(other.ckpts_dir)
    other.close()


def test_resume_restores_best_k_state(ssc):
    first = SucroseCheckpoint(ssc, monitor="score", save_top_k=2)
    fit([first], epochs=3)
    again = SucroseCheckpoint(ssc, monitor="score", save_top_k=2)
    fit([again], epochs=3, ckpt=ssc.last_ckpt())  # nothing left to train: state restored only
    for key in ("best_model_path", "best_model_score", "kth_best_model_path", "kth_value", "best_k_models"):
        assert getattr(again, key) == getattr(first, key), key
    # 3.0, 1.0, 2.0: the first and second best are epochs 2 and 3; epoch 1 was pruned
    assert names(ssc) == ["base_e2.best.ckpt", "base_e3.best.ckpt"]


def test_resume_keeps_the_file_it_resumed_from(ssc):
    def callback() -> SucroseCheckpoint:
        return SucroseCheckpoint(ssc, monitor="step", mode="max", save_top_k=2, every_n_train_steps=2)

    fit([callback()], epochs=5, val=False, max_steps=5)
    assert names(ssc) == ["base_e0_s2.best.ckpt", "base_e0_s4.best.ckpt"]
    fit([callback()], epochs=5, val=False, max_steps=8, ckpt=str(ssc.ckpts_dir / "base_e0_s4.best.ckpt"))
    assert names(ssc) == ["base_e0_s4.best.ckpt", "base_e1_s6.best.ckpt", "base_e1_s8.best.ckpt"]


def test_resume_from_stock_keeps_its_files(ssc, tmp_path):
    options = {"monitor": "step", "mode": "max", "save_last": True, "save_top_k": 2, "every_n_train_steps": 1}
    stock = ModelCheckpoint(dirpath=tmp_path / "stock", filename="{step}", **options)
    fit([stock], epochs=1, val=False, limit_train_batches=3)
    assert sorted(os.listdir(tmp_path / "stock")) == ["last.ckpt", "step=2.ckpt", "step=3.ckpt"]
    fit([SucroseCheckpoint(ssc, **options)], epochs=2, val=False, ckpt=tmp_path / "stock" / "step=2.ckpt")
    assert sorted(os.listdir(tmp_path / "stock")) == ["last.ckpt", "step=2.ckpt", "step=3.ckpt"]
    assert "last.ckpt" in names(ssc)


def test_rerun_without_resume_moves_aside_never_v1(ssc):
    for run in range(2):
        callback = SucroseCheckpoint(ssc, monitor="epoch_score", save_top_k=-1, save_last=run == 0)
        if run:
            with pytest.warns(sucrose.SucroseWarning, match="abandoned"):
                fit([callback], epochs=2, limit_val_batches=1)
        else:
            fit([callback], epochs=2, limit_val_batches=1)
        # the second run's best-k names are the first's: no -v1, the older files moved aside (documented)
        assert {Path(p).name for p in callback.best_k_models} == {"base_e1.best.ckpt", "base_e2.best.ckpt"}
    assert names(ssc) == ["base_e1.best.ckpt", "base_e2.best.ckpt", "last.ckpt"]
    assert sorted(p.name for p in ssc.layout.abandoned_dir.iterdir()) == [
        "base_e1.best.ckpt",
        "base_e2.best.ckpt",
    ]


def test_second_fit_on_the_same_trainer_continues(ssc):
    callback = SucroseCheckpoint(ssc, monitor="epoch_score", save_top_k=-1)
    model = Scripted(in_dim=4, hidden=6, lr=0.1)
    t = fit([callback], model=model, epochs=2)
    t.fit_loop.max_epochs = 4
    train, val = data()
    t.fit(model, train, val)
    assert names(ssc) == [f"base_e{e}.best.ckpt" for e in (1, 2, 3, 4)]
    assert len(callback.best_k_models) == 4
    assert not ssc.layout.abandoned_dir.exists()


def test_ckpt_path_last_and_best(ssc):
    callback = SucroseCheckpoint(ssc, monitor="score", save_top_k=1, save_last=True)
    fit([callback], epochs=3)  # 3.0, 1.0, 2.0
    assert callback.best_model_path.endswith("base_e2.best.ckpt")
    assert callback._find_last_checkpoints(None) == {ssc.last_ckpt()}  # type: ignore[arg-type]
    # "last": sucrose's most advanced checkpoint (documented), here the latest state of epoch 3
    t = fit([SucroseCheckpoint(ssc, monitor="score", save_top_k=1, save_last=True)], epochs=4, ckpt="last")
    assert t.ckpt_path.endswith("base_e3.best-latest.ckpt") and t.global_step == 4 * BATCHES
    _, val = data()
    t.validate(ckpt_path="best", dataloaders=val, verbose=False)
    assert t.ckpt_path == t.checkpoint_callback.best_model_path


def test_repeated_fit_and_test_from_best(ssc):
    callback = SucroseCheckpoint(ssc, monitor="val_loss")
    fit([callback], epochs=1, limit_val_batches=2, limit_test_batches=2)
    before = names(ssc)
    for _ in range(2):
        t = fit([SucroseCheckpoint(ssc, monitor="val_loss")], epochs=1, ckpt=callback.best_model_path)
        _, val = data()
        t.test(ckpt_path=callback.best_model_path, dataloaders=val, verbose=False)
        assert t.global_step == BATCHES and t.saves == []
        assert names(ssc) == before


def test_repeated_fit_validate_test_add_nothing(ssc):
    fit(ssc.callbacks(), epochs=2)
    assert load(ssc.last_ckpt())["global_step"] == 2 * BATCHES
    before = names(ssc)
    model = Scripted(in_dim=4, hidden=6, lr=0.1)
    train, val = data()
    t = Spy(
        accelerator="cpu", max_epochs=2, callbacks=ssc.callbacks(), logger=False, enable_progress_bar=False
    )
    assert (t.global_step, t.current_epoch) == (0, 0)
    t.test(model, val, verbose=False)
    assert (t.global_step, t.current_epoch) == (0, 0)
    t.fit(model, train, val, ckpt_path=ssc.last_ckpt())
    t.validate(model, val, verbose=False)
    t.fit(model, train, val)
    assert (t.global_step, t.current_epoch) == (2 * BATCHES, 2)
    assert t.fit_loop.epoch_progress.current.processed == 2
    assert t.saves == [] and names(ssc) == before


def test_finetuning_from_best(ssc):
    callback = SucroseCheckpoint(ssc, monitor="val_loss", save_top_k=-1)
    fit([callback], epochs=1)
    best = [callback.best_model_path]
    for epochs in (2, 3):
        t = fit(ssc.callbacks(tag="all"), epochs=epochs, ckpt=best[-1])
        _, val = data()
        t.test(dataloaders=val, verbose=False)
        best.append(t.checkpoint_callback.best_model_path)
    assert [Path(p).name for p in best] == ["base_e1.best.ckpt", "base_e2.all.ckpt", "base_e3.all.ckpt"]


# --------------------------------------------------------------------------- wiring, IO, messages


def test_trainer_checkpoint_callback_wiring(ssc):
    main, best = SucroseCheckpoint(ssc), SucroseCheckpoint(ssc, monitor="val_loss")
    t = pl.Trainer(callbacks=[main, best], logger=False)
    assert t.checkpoint_callback is main and t.checkpoint_callbacks == [main, best]
    with pytest.raises(
        MisconfigurationException, match="`enable_checkpointing=False` but found `ModelCheckpoint`"
    ):
        pl.Trainer(enable_checkpointing=False, callbacks=ssc.callbacks(), logger=False)
    off = pl.Trainer(enable_checkpointing=False, logger=False, max_epochs=1, enable_progress_bar=False)
    assert not off.checkpoint_callbacks


def test_two_callbacks_keep_their_own_state(ssc):
    def callbacks() -> list[SucroseCheckpoint]:
        return [ssc.callbacks()[0], SucroseCheckpoint(ssc, monitor="score", save_top_k=1)]

    main, best = callbacks()
    t = fit([main, best], epochs=3)
    chk = load(ssc.last_ckpt())
    assert {main.state_key, best.state_key} <= set(chk["callbacks"])
    assert t.checkpoint_callback is main
    main2, best2 = callbacks()
    fit([main2, best2], epochs=3, ckpt=ssc.last_ckpt())
    assert (main2.best_model_path, best2.best_model_path) == (main.best_model_path, best.best_model_path)
    assert best2.best_model_path.endswith("base_e2.best.ckpt")


def test_storage_options_and_weights_only_pass_through(ssc, tmp_path):
    t = fit(ssc.callbacks(), epochs=1)
    with pytest.raises(
        TypeError, match=r"`Trainer.save_checkpoint\(..., storage_options=...\)` .* not supported"
    ):
        t.save_checkpoint(tmp_path / "x.ckpt", storage_options="my options")
    t.save_checkpoint(tmp_path / "w.ckpt", True)
    assert "optimizer_states" not in load(tmp_path / "w.ckpt")
    assert "optimizer_states" in load(ssc.last_ckpt())


def test_verbose_messages(ssc, caplog):
    class Worse(Scripted):
        scores: ClassVar[list[float]] = [1.0, 2.0]

    lightning_log = logging.getLogger("lightning.pytorch")
    level = lightning_log.level
    lightning_log.setLevel(logging.INFO)
    try:
        with caplog.at_level(logging.INFO):
            fit([SucroseCheckpoint(ssc, monitor="score", save_top_k=1, verbose=True)], Worse, 2)
    finally:
        lightning_log.setLevel(level)
    assert re.search(
        r"'score' reached 1\.00000 \(best 1\.00000\), saving model to .*base_e1\.best\.ckpt", caplog.text
    )
    assert "'score' was not in top 1" in caplog.text


def test_missing_monitor_key(ssc):
    # after validation ran: Lightning's error
    with pytest.raises(MisconfigurationException, match=r"could not find the monitored key"):
        fit([SucroseCheckpoint(ssc, monitor="nope")], epochs=1)
    # no validation: Lightning's warning and no top-k file; sucrose still keeps the latest state
    # (a monitored callback keeps it whenever a save is not among the top k, documented)
    fresh = sucrose.scenario(ssc.workspace, "base/case1")
    callback = SucroseCheckpoint(fresh, monitor="nope")
    with pytest.warns(UserWarning, match=r"could not find the monitored key"):
        fit([callback], epochs=2, val=False)
    assert callback.best_k_models == {} and callback.best_model_path == ""
    assert names(fresh) == ["base_case1_e2.best-latest.ckpt"]
    fresh.close()


def test_save_on_exception(ssc):
    class Boom(Scripted):
        def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            if self.global_step == 5:
                raise RuntimeError("boom")
            return super().training_step(batch, batch_idx)

    plain = SucroseCheckpoint(ssc, save_on_exception=True, save_last=True)
    with pytest.raises(RuntimeError, match="boom"):
        fit([plain], Boom, 3)
    assert names(ssc) == ["base_e1.ckpt", "base_e1_s5.ckpt", "last.ckpt"]
    assert load(ssc.last_ckpt())["global_step"] == 5
    # without save_on_exception only the epoch-end save is there
    other = sucrose.scenario(ssc.workspace, "base/case1")
    with pytest.raises(RuntimeError, match="boom"):
        fit(other.callbacks(), Boom, 3)
    assert names(other) == ["base_case1_e1.ckpt"]
    other.close()


def test_monitored_save_on_exception_is_the_latest_state(ssc):
    class Boom(Scripted):
        scores: ClassVar[list[float]] = [1.0, 2.0, 3.0]

        def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            if self.global_step == 9:
                raise RuntimeError("boom")
            return super().training_step(batch, batch_idx)

    # sucrose: a monitored callback's save on exception is not among its top k, so it is its latest
    # state (replaced by the next one), not a "best" file that top-k pruning never removes
    best = SucroseCheckpoint(ssc, monitor="score", save_on_exception=True)
    with pytest.raises(RuntimeError, match="boom"):
        fit([best], Boom, 3)
    assert names(ssc) == ["base_e1.best.ckpt", "base_e2_s9.best-latest.ckpt"]
    assert best.latest_model_path == ssc.last_ckpt()
    assert set(best.best_k_models) == {str(ssc.ckpts_dir / "base_e1.best.ckpt")}
    again = SucroseCheckpoint(ssc, monitor="score")
    fit([again], Scripted, 3, ckpt=ssc.last_ckpt())  # 3.0 at epoch 3: not better than 1.0
    assert names(ssc) == ["base_e1.best.ckpt", "base_e3.best-latest.ckpt"]
    assert again.best_model_path == best.best_model_path
