"""Asynchronous saves: exact snapshots, invisible until renamed, one in flight, failures raised later.

Tests that need a write to be "in flight" hold the background writer inside the serialization
(``_atomic._serialize``) on an event, so every ordering is forced, never timed. Kill tests run
children that write a marker file once the background write has started, and the parent
SIGKILLs them only after it has seen the marker.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import lit_helpers as H
import pytest
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

import sucrose_lightning as sucrose
from sucrose_lightning import _async, _atomic
from sucrose_lightning._async import AsyncSaver, Snapshot
from sucrose_lightning._ckpt_io import SucroseCheckpointIO
from sucrose_lightning.errors import CheckpointError

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    return H.write_workspace(tmp_path / "ws")


class Gate:
    """Holds the background writer inside ``torch.save`` until :meth:`open` (``started`` is set then)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.started = threading.Event()
        self._go = threading.Event()
        real = _atomic._serialize

        def held(obj: Any, stream: Any) -> None:
            self.started.set()
            assert self._go.wait(60), "the test never opened the gate"
            real(obj, stream)

        monkeypatch.setattr(_atomic, "_serialize", held)

    def open(self) -> None:
        self._go.set()


def _net() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.Linear(32, 4))


# --------------------------------------------------------------------------- the snapshot


def test_the_file_holds_the_state_at_the_save_not_what_training_did_after(ws: Path, monkeypatch) -> None:
    gate = Gate(monkeypatch)
    model, optim = _net(), None
    optim = torch.optim.Adam(model.parameters())
    model(torch.randn(3, 16)).sum().backward()
    optim.step()
    at_save = {k: v.clone() for k, v in model.state_dict().items()}
    optim_at_save = {k: v["exp_avg"].clone() for k, v in optim.state_dict()["state"].items()}
    ssc = sucrose.SucroseScenario(ws, "base")
    path = ssc.save_state_dict(1, model=model, optim=optim, async_save=True)
    assert gate.started.wait(60)
    with torch.no_grad():  # training goes on while the file is written
        for p in model.parameters():
            p.add_(1.0)
    model(torch.randn(3, 16)).sum().backward()
    optim.step()
    gate.open()
    ssc.close()
    back = torch.load(path, weights_only=True)
    assert back["model"].keys() == at_save.keys()
    assert all(torch.equal(back["model"][k], v) for k, v in at_save.items())
    assert all(torch.equal(back["optim"]["state"][k]["exp_avg"], v) for k, v in optim_at_save.items())
    assert not all(torch.equal(model.state_dict()[k], v) for k, v in at_save.items())  # it did change
    assert back["model"]._metadata == model.state_dict()._metadata  # the state dict's versions


def test_snapshot_keeps_shared_storages_views_and_containers() -> None:
    base = torch.arange(12, dtype=torch.float64)
    tied = torch.nn.Parameter(torch.ones(2, 3))
    state = {
        "base": base,
        "view": base[2:8].view(2, 3),
        "tied": [tied, tied],
        "tuple": (1, "x", None),
        "ints": torch.arange(4, dtype=torch.int8),
        "empty": torch.empty(0),
        "sparse": torch.eye(3).to_sparse(),
        "nested": {"deep": {"t": torch.full((2,), 7.0)}},
    }
    snap = Snapshot()
    copied = snap.take(state)
    base.zero_()
    with torch.no_grad():
        tied.zero_()
    assert copied["base"].tolist() == list(map(float, range(12)))
    assert copied["view"].tolist() == [[2.0, 3.0, 4.0], [5.0, 6.0, 7.0]]
    assert copied["view"].untyped_storage().data_ptr() == copied["base"].untyped_storage().data_ptr()
    assert copied["tied"][0] is copied["tied"][1] and copied["tied"][0].tolist() == [[1.0] * 3] * 2
    assert isinstance(copied["tied"][0], torch.nn.Parameter) and copied["tied"][0].requires_grad
    assert copied["tuple"] == (1, "x", None) and copied["ints"].dtype == torch.int8
    assert copied["empty"].shape == (0,) and torch.equal(copied["sparse"].to_dense(), torch.eye(3))
    assert copied["nested"]["deep"]["t"].tolist() == [7.0, 7.0]


def test_snapshot_buffers_are_reused_once_the_write_is_done() -> None:
    snap = Snapshot()
    state = {"a": torch.ones(1000), "b": torch.zeros(10)}
    first = snap.take(state)
    ptr = first["a"].untyped_storage().data_ptr()
    snap.release()
    second = snap.take(state)
    assert second["a"].untyped_storage().data_ptr() == ptr  # no new allocation per save
    assert snap.nbytes == 4040
    snap.clear()
    assert snap.nbytes == 0


# --------------------------------------------------------------------------- visibility and ordering


def test_an_unfinished_file_is_invisible_to_listing_resume_retention_and_the_inventory(
    ws: Path, monkeypatch
) -> None:
    ssc = sucrose.SucroseScenario(ws, "base")
    model = _net()
    ssc.save_state_dict(1, model=model)
    gate = Gate(monkeypatch)
    path = ssc.save_state_dict(1, model=model, async_save=True)
    assert gate.started.wait(60)
    store = ssc.store
    assert [c.epochs for c in ssc.ckpts(plain_loop=True)] == [1]
    assert store.resume_target(".pt").epochs == 1
    assert [c.epochs for c in store.retention(1, ".pt").keep] == [1]
    assert [c.epochs for c in store.inventory().ckpts] == [1]
    problems, notes, _ = store.problems()
    assert problems == [] and [n[1] for n in notes] == ["a save in progress (its process is running)"]
    assert not path.exists() and len(ssc.layout.temp_files()) == 1
    gate.open()
    ssc.close()
    assert [c.epochs for c in ssc.ckpts(plain_loop=True)] == [1, 2]
    assert not ssc.layout.temp_files()


class _Seen(logging.Handler):
    def __init__(self, text: str) -> None:
        super().__init__(logging.DEBUG)
        self.text, self.event = text, threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if self.text in record.getMessage():
            self.event.set()


def test_the_next_save_waits_for_the_one_in_flight_and_says_so(ws: Path, monkeypatch) -> None:
    logger = logging.getLogger("sucrose_lightning")
    seen = _Seen("waiting for the background save")
    logger.addHandler(seen)
    level = logger.level
    logger.setLevel(logging.DEBUG)
    try:
        gate = Gate(monkeypatch)
        ssc = sucrose.SucroseScenario(ws, "base")
        model = _net()
        first = ssc.save_state_dict(1, model=model, async_save=True)
        assert gate.started.wait(60)
        second: list[Path | None] = []

        def save_again() -> None:
            second.append(ssc.save_state_dict(1, model=model, async_save=True))

        saver = threading.Thread(target=save_again)
        saver.start()
        assert seen.event.wait(60)  # the second save is blocked on the first
        blocked = time.perf_counter()
        assert second == [] and not first.exists()
        held = time.perf_counter() - blocked
        gate.open()
        saver.join(60)
        waits, stalls = list(ssc._writer.waits), list(ssc._writer.stalls)
        ssc.close()
        assert second[0] is not None and first.exists() and second[0].exists()
        # each save's stall is recorded with the part spent waiting for the write in flight: the
        # second one waited at least from its log line to the gate's opening
        assert len(waits) == len(stalls) == 2 and waits[0] <= stalls[0]
        assert held <= waits[1] <= stalls[1]
    finally:
        logger.removeHandler(seen)
        logger.setLevel(level)


# --------------------------------------------------------------------------- failures


def _fail_writes(monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """Make every write fail with ENOSPC; the event is set once one has failed."""
    failed = threading.Event()

    def full(obj: Any, stream: Any) -> None:
        failed.set()
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(_atomic, "_serialize", full)
    return failed


def test_a_failed_background_write_is_raised_at_the_next_save_naming_the_file(ws: Path, monkeypatch) -> None:
    ssc = sucrose.SucroseScenario(ws, "base")
    model = _net()
    ssc.save_state_dict(1, model=model)
    failing = _fail_writes(monkeypatch)
    failed = ssc.save_state_dict(1, model=model, async_save=True)  # returns: the write is in the background
    assert failing.wait(60)
    monkeypatch.undo()
    with pytest.raises(CheckpointError) as err:
        ssc.save_state_dict(1, model=model, async_save=True)
    text = str(err.value)
    assert str(failed) in text and "the disk is full (ENOSPC)" in text and "save again" in text
    assert not failed.exists() and not ssc.layout.temp_files()
    again = ssc.save_state_dict(1, model=model, async_save=True)  # the failure is reported once
    ssc.close()
    assert again is not None and again.exists()
    assert [c.epochs for c in ssc.ckpts(plain_loop=True)] == [1, 3]


def test_close_waits_and_raises_a_failed_write(ws: Path, monkeypatch) -> None:
    ssc = sucrose.SucroseScenario(ws, "base")
    _fail_writes(monkeypatch)
    path = ssc.save_state_dict(1, model=_net(), async_save=True)
    with pytest.raises(CheckpointError, match=r"background save of checkpoint .*base_e1\.pt failed"):
        ssc.close()
    ssc.close()  # reported once; the lock is released either way
    assert not path.exists()


def test_a_with_block_ending_in_an_error_logs_the_failed_write_instead(ws: Path, monkeypatch, caplog) -> None:
    _fail_writes(monkeypatch)
    with pytest.raises(KeyError), sucrose.scenario(ws, "base") as ssc:
        ssc.save_state_dict(1, model=_net(), async_save=True)
        raise KeyError("the user's own error")
    assert "background save of checkpoint" in caplog.text


def test_saver_wait_without_a_save_and_after_write_order(ws: Path) -> None:
    ssc = sucrose.SucroseScenario(ws, "base")
    saver = AsyncSaver(ssc.store)
    saver.wait()
    ran: list[str] = []
    saver.after_write(lambda: ran.append("now"))
    assert ran == ["now"]
    saver.save({"w": torch.ones(2)}, ssc.layout.ckpt_path(1))
    saver.after_write(lambda: ran.append("after"))
    assert saver.stalls and saver.stalls[-1] >= 0
    saver.close()
    assert ran == ["now", "after"] and ssc.layout.ckpt_path(1).exists()


# --------------------------------------------------------------------------- loading


def test_load_state_dict_memory_maps_local_files_only(ws: Path, monkeypatch) -> None:
    ssc = sucrose.SucroseScenario(ws, "base")
    model = _net()
    ssc.save_state_dict(1, model=model)
    ssc.close()
    seen: list[dict[str, Any]] = []
    real = torch.load

    def spy(*args: Any, **kwds: Any) -> Any:
        seen.append(kwds)
        return real(*args, **kwds)

    monkeypatch.setattr(torch, "load", spy)
    other = _net()
    sucrose.SucroseScenario(ws, "base").load_state_dict(model=other)
    assert seen[-1]["mmap"] is True
    pairs = zip(model.state_dict().values(), other.state_dict().values(), strict=True)
    assert all(torch.equal(a, b) for a, b in pairs)
    monkeypatch.setattr(_async, "_fs_type", lambda path: "nfs4")
    sucrose.SucroseScenario(ws, "base").load_state_dict(model=other)
    assert "mmap" not in seen[-1]
    sucrose.SucroseScenario(ws, "base").load_state_dict(model=other, loader_kwds={"mmap": False})
    assert seen[-1]["mmap"] is False


def test_checkpoint_io_loads_with_mmap(ws: Path, monkeypatch) -> None:
    ssc = sucrose.SucroseScenario(ws, "base")
    io = SucroseCheckpointIO(ssc.store, async_save=True)
    path = ssc.layout.ckpt_path(1, None, ".ckpt")
    io.save_checkpoint({"w": torch.arange(3.0)}, path)
    io.teardown()
    seen: list[dict[str, Any]] = []
    real = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **k: seen.append(k) or real(*a, **k))
    assert io.load_checkpoint(path)["w"].tolist() == [0.0, 1.0, 2.0]
    assert seen[-1]["mmap"] is True
    with pytest.raises(FileNotFoundError):
        io.load_checkpoint(path.with_name("missing.ckpt"))


# --------------------------------------------------------------------------- Lightning


def _files(ssc: Any) -> dict[str, dict[str, Any]]:
    return {Path(c.path).name: torch.load(c.path, weights_only=False) for c in ssc.ckpts()}


def test_lightning_async_files_equal_the_synchronous_run_s(tmp_path: Path) -> None:
    H.quiet()
    runs = {}
    for mode in (False, True):
        ws = H.write_workspace(tmp_path / f"async{mode}")
        ssc = sucrose.SucroseScenario(ws, "base")
        trainer, _ = H.fit(ssc, 3, every_n_train_steps=2, async_save=mode)
        io = trainer.strategy.checkpoint_io
        assert isinstance(io, SucroseCheckpointIO) and (io.saver is not None) == mode
        assert io.saver is None or io.saver.in_flight is None  # fit waited for the last write
        runs[mode] = _files(ssc)
    assert runs[True].keys() == runs[False].keys() and len(runs[True]) >= 6
    for name, sync in runs[False].items():
        got = runs[True][name]
        assert got["global_step"] == sync["global_step"], name
        for key, value in sync["state_dict"].items():
            assert torch.equal(got["state_dict"][key], value), (name, key)
        assert got["optimizer_states"][0]["state"].keys() == sync["optimizer_states"][0]["state"].keys()


def test_lightning_async_keep_last_counts_completed_files_and_resume_works(ws: Path) -> None:
    H.quiet()
    ssc = sucrose.SucroseScenario(ws, "base")
    H.fit(ssc, 3, async_save=True, keep_last=2)
    assert [c.epochs for c in ssc.ckpts()] == [2, 3]
    trainer, model = H.fit(ssc, 5, async_save=True, keep_last=2)
    assert trainer.global_step == 5 * H.N_BATCHES and [c.epochs for c in ssc.ckpts()] == [4, 5]
    ref_ws = H.write_workspace(ws.parent / "ref")
    _, ref = H.fit(sucrose.SucroseScenario(ref_ws, "base"), 5)
    for a, b in zip(ref.state_dict().values(), model.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_lightning_async_top_k_removes_only_after_the_new_file_is_complete(ws: Path) -> None:
    H.quiet()
    ssc = sucrose.SucroseScenario(ws, "base")
    removed: list[str] = []
    removed_while_in_flight: list[str] = []
    real = TorchCheckpointIO.remove_checkpoint

    def spy(self: SucroseCheckpointIO, path: Any) -> None:  # the deletion itself
        removed.append(str(path))
        if self.saver is not None and self.saver.in_flight is not None:
            removed_while_in_flight.append(str(path))
        real(self, path)

    TorchCheckpointIO.remove_checkpoint = spy  # type: ignore[method-assign]
    try:
        H.fit(ssc, 4, val=True, monitor="val_loss", save_top_k=1, async_save=True)
    finally:
        TorchCheckpointIO.remove_checkpoint = real  # type: ignore[method-assign]
    assert removed and removed_while_in_flight == []
    assert not any(Path(p).exists() for p in removed)
    assert len([c for c in ssc.ckpts() if c.path.endswith(".best.ckpt")]) == 1


def test_lightning_failed_background_write_raises_at_the_end_of_fit(ws: Path, monkeypatch) -> None:
    H.quiet()
    _fail_writes(monkeypatch)
    ssc = sucrose.SucroseScenario(ws, "base")
    with pytest.raises(
        CheckpointError, match=r"background save of checkpoint .*base_e\d\.ckpt failed.*ENOSPC"
    ):
        H.fit(ssc, 1, async_save=True)
    assert ssc.ckpts() == [] and not ssc.layout.temp_files()
    monkeypatch.undo()
    H.fit(ssc, 1, async_save=True)  # the lock was released
    assert [c.epochs for c in ssc.ckpts()] == [1]


def test_lightning_failed_background_write_raises_at_the_next_save(ws: Path, monkeypatch) -> None:
    H.quiet()
    real = _atomic._serialize
    calls = []

    def first_fails(obj: Any, stream: Any) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise OSError(errno.EACCES, "Permission denied")
        real(obj, stream)

    monkeypatch.setattr(_atomic, "_serialize", first_fails)
    ssc = sucrose.SucroseScenario(ws, "base")
    with pytest.raises(CheckpointError, match=r"base_e1\.ckpt failed: .*permission denied"):
        H.fit(ssc, 3, async_save=True)
    assert len(calls) == 1  # the second save refused to start


def test_async_save_with_a_custom_io_warns(ws: Path) -> None:
    from lightning.pytorch.plugins.io import AsyncCheckpointIO

    H.quiet()
    ssc = sucrose.SucroseScenario(ws, "base")
    pl = H.pl
    trainer = pl.Trainer(
        accelerator="cpu",
        max_epochs=1,
        callbacks=ssc.callbacks(async_save=True),
        plugins=[AsyncCheckpointIO()],
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    model = H.make_model(ssc)
    with pytest.warns(sucrose.SucroseWarning, match="async_save=True has no effect"):
        trainer.fit(model, H.loaders(ssc)[0])


def test_lightning_resume_loads_with_mmap(ws: Path, monkeypatch) -> None:
    H.quiet()
    ssc = sucrose.SucroseScenario(ws, "base")
    H.fit(ssc, 1, async_save=True)
    seen: list[dict[str, Any]] = []
    real = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **k: seen.append(k) or real(*a, **k))
    trainer, _ = H.fit(ssc, 2, async_save=True)
    assert trainer.global_step == 2 * H.N_BATCHES and seen[0]["mmap"] is True


# --------------------------------------------------------------------------- kills


def _plain_child(ws: str, marker: str, mb: int, hold: bool) -> None:
    """Save epoch 1 synchronously, start epoch 2's save in the background, write ``marker``, wait."""
    torch.set_num_threads(1)
    ssc = sucrose.scenario(ws, "base")
    state = {"w": torch.arange(mb * 2**18, dtype=torch.float32)}
    ssc.save_state_dict(1, model=torch.nn.Linear(2, 2))
    if hold:  # the writer writes part of the file, says so, and never finishes
        started = threading.Event()

        def partial(obj: Any, stream: Any) -> None:
            stream.write(b"PK\x03\x04 a part of the checkpoint")
            stream.flush()
            started.set()
            threading.Event().wait()

        _atomic._serialize = partial  # type: ignore[assignment]
        ssc.save_state_dict(1, state=state, async_save=True)
        started.wait()
    else:  # a real write, killed wherever it is
        ssc.save_state_dict(1, state=state, async_save=True)
    Path(marker).write_text("in flight")
    threading.Event().wait()


def _wait_for(path: Path, proc: Any) -> None:
    while not path.exists():
        assert proc.is_alive(), "the child died before its marker"
        proc.join(0.01)


@pytest.mark.parametrize("hold", [True, False], ids=["held-in-write", "real-write"])
def test_kill_with_a_background_save_in_flight_leaves_no_partial_final_file(
    tmp_path: Path, hold: bool
) -> None:
    ctx = H.forkserver()
    for i in range(3):
        ws = H.write_workspace(tmp_path / f"ws{i}")
        marker = tmp_path / f"marker{i}"
        proc = ctx.Process(target=_plain_child, args=(str(ws), str(marker), 64, hold))
        proc.start()
        _wait_for(marker, proc)
        os.kill(proc.pid, signal.SIGKILL)
        proc.join(60)
        assert proc.exitcode == -signal.SIGKILL
        ssc = sucrose.SucroseScenario(ws, "base")
        for ckpt in ssc.ckpts(plain_loop=True):  # every file with a final name is complete
            assert _atomic.check_file(ckpt.path, verify=True) is None, ckpt.path
        epochs = [c.epochs for c in ssc.ckpts(plain_loop=True)]
        if hold:
            assert epochs == [1] and len(ssc.layout.temp_files()) == 1
        else:
            assert epochs in ([1], [1, 2])
            if epochs == [1, 2]:
                back = torch.load(ssc.ckpts(plain_loop=True)[-1].path, weights_only=True)["state"]
                assert torch.equal(back["w"], torch.arange(64 * 2**18, dtype=torch.float32))
        assert ssc.last_epoch == epochs[-1]
        for _ in ssc.epoch_range(1):  # the next run cleans up the killed save's temporary file
            pass
        assert not ssc.layout.temp_files()
        ssc.close()


def _lit_child(ws: str, marker: str, die_at_save: int) -> None:
    """Resume and train with ``async_save=True``; the ``die_at_save``-th background write stops half-way
    after writing ``marker`` (0: never)."""
    H.quiet()
    torch.set_num_threads(1)
    calls: list[int] = []
    if die_at_save:
        real = _atomic._serialize

        def maybe_hold(obj: Any, stream: Any) -> None:
            calls.append(1)
            if len(calls) < die_at_save:
                return real(obj, stream)
            stream.write(b"PK\x03\x04 half")
            stream.flush()
            Path(marker).write_text("in flight")
            threading.Event().wait()

        _atomic._serialize = maybe_hold  # type: ignore[assignment]
    ssc = sucrose.scenario(ws, "base")
    H.fit(ssc, 6, async_save=True)  # end-of-epoch saves: a shuffled loader resumes exactly


def test_lightning_kill_with_a_background_save_in_flight_then_resume_is_bitwise_equal(tmp_path: Path) -> None:
    ctx = H.forkserver()
    ref_ws = H.write_workspace(tmp_path / "ref")
    proc = ctx.Process(target=_lit_child, args=(str(ref_ws), "", 0))
    proc.start()
    proc.join(120)
    assert proc.exitcode == 0
    ws = H.write_workspace(tmp_path / "killed")
    ssc = sucrose.SucroseScenario(ws, "base")
    progress = []
    for i, nth in enumerate((3, 2, 2)):  # held: e3, then e4 (after e3), then e5 (after e4)
        marker = tmp_path / f"marker{i}"
        proc = ctx.Process(target=_lit_child, args=(str(ws), str(marker), nth))
        proc.start()
        _wait_for(marker, proc)
        os.kill(proc.pid, signal.SIGKILL)
        proc.join(60)
        assert proc.exitcode == -signal.SIGKILL
        for ckpt in ssc.ckpts():
            assert _atomic.check_file(ckpt.path, verify=True) is None, ckpt.path
        assert len(ssc.layout.temp_files()) == 1  # the killed write's, under its hidden name
        progress.append(ssc.ckpts()[-1].order)
    assert [order[0] for order in progress] == [2, 3, 4]
    proc = ctx.Process(target=_lit_child, args=(str(ws), "", 0))
    proc.start()
    proc.join(120)
    assert proc.exitcode == 0 and not ssc.layout.temp_files()
    ref = sucrose.SucroseScenario(ref_ws, "base")
    a = torch.load(ref.last_ckpt(), weights_only=False)
    b = torch.load(ssc.last_ckpt(), weights_only=False)
    assert a["global_step"] == b["global_step"] == 6 * H.N_BATCHES
    for key, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][key]), key


def test_ddp_async_rank_0_writes_once_and_both_ranks_agree(tmp_path: Path) -> None:
    """The DDP script of ``test_lightning_ddp.py`` with ``async_save=True``: 2 gloo processes."""
    ws = H.write_workspace(tmp_path / "ws")
    out = tmp_path / "result.json"
    proc = subprocess.run(
        [sys.executable, str(Path(H.__file__).resolve()), "ddp", str(ws), "base/case1", str(out)],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=tmp_path,
        env={**os.environ, "SUCROSE_TEST_ASYNC": "1"},
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ssc = sucrose.SucroseScenario(ws, "base/case1")
    expected = [str(ssc.ckpts_dir / f"base_case1_e{i}.ckpt") for i in (1, 2, 3)]
    assert [c.path for c in ssc.ckpts()] == expected
    rank0 = json.loads(out.with_suffix(".rank0.json").read_text())
    rank1 = json.loads(out.with_suffix(".rank1.json").read_text())
    assert rank0 == rank1  # the same last_ckpt() on both ranks, after fit waited for the last write
    assert [r["last_after"] for r in rank0] == [expected[1], expected[2]]
    assert out.with_suffix(".writes0").read_text().split() == expected
    assert not out.with_suffix(".writes1").exists() and not ssc.layout.temp_files()
    for path in expected:
        assert _atomic.check_file(path, verify=True) is None
