"""Issue 5, plain-PyTorch half: what happens when a run dies, a file goes bad or a write fails.

Real files in ``tmp_path``; real processes where a crash or a second process is the
point. Training children are forked from a ``forkserver`` that has torch, torch.optim's
lazy ``torch._dynamo`` import and the training script preloaded, so each of the kill
test's many restarts starts in milliseconds instead of ~3 s; each child is still a
separate process that is SIGKILLed for real (its lock, open files and half-written
temporary file die with it).
"""

from __future__ import annotations

import errno
import multiprocessing
import multiprocessing.forkserver
import os
import random
import shutil
import signal
import socket
import struct
import time
import warnings
import zipfile
from pathlib import Path

import plain_train_script as script
import pytest
import torch
from child_procs import preloaded_forkserver

import sucrose_lightning as sucrose
from sucrose_lightning import _atomic, _rng
from sucrose_lightning.errors import (
    CheckpointError,
    LockError,
    SucroseWarning,
    UnsafeCheckpointError,
)
from sucrose_lightning.layout import ABANDONED_FOLDER, TMP_SUFFIX

NAME = script.SCENARIO  # "base/tiny"
STEM = "base_tiny"


# --------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def ctx() -> multiprocessing.context.BaseContext:
    """A forkserver context whose server has torch and the training script imported."""
    return preloaded_forkserver(["plain_train_script"])


def ws_of(tmp_path: Path, name: str) -> Path:
    ws = tmp_path / name
    script.write_config(str(ws))
    return ws


def ckpt_dir(ws: Path) -> Path:
    return ws / "ckpts" / "base" / "tiny"


def ckpt(ws: Path, epochs: int) -> Path:
    return ckpt_dir(ws) / f"{STEM}_e{epochs}.pt"


def run_child(ctx, target, *args, timeout: float = 30.0, **kwargs) -> int:
    proc = ctx.Process(target=target, args=args, kwargs=kwargs)
    proc.start()
    proc.join(timeout)
    if proc.is_alive():  # pragma: no cover - a hang is a failure, not a stuck suite
        proc.kill()
        proc.join()
        pytest.fail(f"child {target.__name__}{args} did not finish in {timeout} s")
    return proc.exitcode


def load(path: Path) -> dict:
    return torch.load(path, weights_only=True, map_location="cpu")


def assert_same_state(a: dict, b: dict) -> None:
    """Bitwise equality of two nested state dicts (tensors compared with torch.equal)."""
    assert type(a) is type(b)
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            assert_same_state(a[key], b[key])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            assert_same_state(x, y)
    elif isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape
        assert torch.equal(a, b), "tensors differ"
    else:
        assert a == b


def weights_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def final_files(ws: Path) -> dict[int, Path]:
    """Every file with a final checkpoint name, by epoch stamp."""
    out = {}
    folder = ckpt_dir(ws)
    if folder.is_dir():
        for p in folder.iterdir():
            if p.name.startswith(STEM + "_e") and p.name.endswith(".pt"):
                out[int(p.name[len(STEM) + 2 : -3])] = p
    return out


def temp_files(ws: Path) -> list[Path]:
    folder = ckpt_dir(ws)
    return [p for p in folder.iterdir() if p.name.endswith(TMP_SUFFIX)] if folder.is_dir() else []


def flip_tensor_byte(path: Path) -> None:
    """Flip one byte inside a tensor's stored data (zip headers stay intact)."""
    with zipfile.ZipFile(path) as archive:
        info = max(
            (i for i in archive.infolist() if "/data/" in i.filename and i.file_size >= 64),
            key=lambda i: i.file_size,
        )
    raw = bytearray(path.read_bytes())
    fn_len, extra_len = struct.unpack("<HH", raw[info.header_offset + 26 : info.header_offset + 30])
    start = info.header_offset + 30 + fn_len + extra_len
    raw[start + info.file_size // 2] ^= 0xFF
    path.write_bytes(bytes(raw))


def fresh(ws: Path):
    """A new model/optimizer pair and a new scenario object (as a restarted run has)."""
    torch.manual_seed(99)
    ssc = sucrose.scenario(ws, NAME)
    model = ssc.partial(script.Net, "model")()
    optim = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    return ssc, model, optim


# --------------------------------------------------------------------------- 1. kill test


MIN_KILLS = 12  # kills after the run logged START (mid-training); every 4th run dies during start-up
KILL_EPOCHS = 60


def _kill_at_random_moment(proc, log: Path, rng: random.Random, run: int, epoch_s: float) -> None:
    """SIGKILL ``proc`` during its start-up (every 4th run), or after it logged START and
    0-3 finished epochs, at a random time into the next epoch (training or saving)."""
    if run % 4 == 3:
        time.sleep(rng.uniform(0.0, 0.06))
    else:
        wanted = rng.randint(0, 3)
        end = time.monotonic() + 20
        while proc.is_alive() and time.monotonic() < end:
            text = log.read_text() if log.exists() else ""
            if "START" in text and text.count("EPOCH") >= wanted:
                break
            time.sleep(0.002)
        time.sleep(rng.uniform(0.0, 1.5 * epoch_s))
    proc.kill()


def test_sigkill_at_random_moments_then_resume_matches_uninterrupted(tmp_path, ctx):
    """SIGKILL the training at >= 12 random moments mid-training (and some more during its
    start-up); every restart resumes from the newest checkpoint, no final-named file is
    ever partial, and the final weights, optimizer state and step count are bitwise those
    of an uninterrupted run."""
    rng = random.Random(20261126)
    ws = ws_of(tmp_path, "killed")
    deadline = time.monotonic() + 40
    kills = kills_mid_training = kills_mid_save = 0
    resumed_from: list[int] = []
    epoch_s = 0.02  # updated from the runs' own logs
    run = 0
    while True:
        newest_before = max(final_files(ws), default=0)
        log = tmp_path / f"run{run}.log"
        proc = ctx.Process(target=script.train, args=(str(ws), KILL_EPOCHS), kwargs={"log": str(log)})
        proc.start()
        if kills_mid_training < MIN_KILLS and time.monotonic() < deadline:
            _kill_at_random_moment(proc, log, rng, run, epoch_s)
        proc.join(60)
        assert not proc.is_alive()
        lines = log.read_text().splitlines() if log.exists() else []
        starts = [line.split() for line in lines if line.startswith("START")]
        if starts:
            # every restart resumes from the newest checkpoint on disk, never from 0 after progress
            assert int(starts[0][1]) == newest_before, (run, starts, newest_before)
            resumed_from.append(int(starts[0][1]))
            assert int(starts[0][2]) == newest_before * 6  # the global step came back too
        epochs_done = [float(line.split()[3]) for line in lines if line.startswith("EPOCH")]
        if len(epochs_done) >= 2:
            epoch_s = (epochs_done[-1] - epochs_done[0]) / (len(epochs_done) - 1)
        if proc.exitcode == -signal.SIGKILL:
            kills += 1
            kills_mid_training += bool(starts)
            kills_mid_save += bool(temp_files(ws))
        else:
            assert proc.exitcode == 0, f"run {run} failed: exit code {proc.exitcode}\n{lines}"
            assert any(line.startswith("DONE") for line in lines)
            break
        # no file with a final name is partial: the new ones are complete (CRC-checked) and load
        for epochs, path in final_files(ws).items():
            if epochs >= newest_before:
                assert _atomic.check_file(path, verify=True) is None, path
                assert load(path)["sucrose"]["epochs"] == epochs
        run += 1
    assert kills_mid_training >= MIN_KILLS, f"only {kills_mid_training} of {kills} kills landed mid-training"
    assert resumed_from == sorted(resumed_from)
    assert resumed_from[-1] > 0, "the last run did not resume"
    assert not temp_files(ws), "leftover temporary files were not cleaned up"
    assert not (ckpt_dir(ws) / ABANDONED_FOLDER).exists(), "a kill made a checkpoint unreadable"
    assert sorted(final_files(ws)) == list(range(1, KILL_EPOCHS + 1))

    ref = ws_of(tmp_path, "uninterrupted")
    assert run_child(ctx, script.train, str(ref), KILL_EPOCHS, log=str(tmp_path / "ref.log")) == 0
    got, want = load(ckpt(ws, KILL_EPOCHS)), load(ckpt(ref, KILL_EPOCHS))
    assert_same_state(got["model"], want["model"])
    assert_same_state(got["optim"], want["optim"])
    assert got["step"] == want["step"] == KILL_EPOCHS * 6
    print(
        f"\nkills: {kills} ({kills_mid_training} mid-training, {kills_mid_save} left a temporary file); "
        f"resumed from epochs {resumed_from}"
    )


# --------------------------------------------------------------------------- 2. exact resume


def test_exact_resume_2_plus_2_equals_4_and_needs_rng(tmp_path, ctx):
    straight = ws_of(tmp_path, "straight")
    assert run_child(ctx, script.train, str(straight), 4) == 0

    resumed = ws_of(tmp_path, "resumed")
    assert run_child(ctx, script.train, str(resumed), 4, max_epochs=2) == 0
    assert sorted(final_files(resumed)) == [1, 2]
    no_rng = tmp_path / "no_rng"
    shutil.copytree(resumed, no_rng)
    assert run_child(ctx, script.train, str(resumed), 4) == 0  # a new process resumes at 2
    assert run_child(ctx, script.train, str(no_rng), 4, load_rng=False) == 0

    a, b, c = (load(ckpt(ws, 4)) for ws in (straight, resumed, no_rng))
    assert_same_state(a["model"], b["model"])
    assert_same_state(a["optim"], b["optim"])
    assert a["step"] == b["step"] == c["step"] == 24
    # the same resume without restoring the random states ends elsewhere: the test can fail
    assert not weights_equal(a["model"], c["model"])
    # every checkpoint records every random state, in a form weights_only=True loads
    rng = load(ckpt(resumed, 2))["sucrose"]["rng"]
    assert {"python", "numpy", "torch"} <= rng.keys()
    assert isinstance(rng["numpy"][1], list) and isinstance(rng["torch"], torch.Tensor)


def test_restore_rng_round_trip_in_process():
    import numpy as np

    random.seed(5)
    np.random.seed(5)
    torch.manual_seed(5)
    state = _rng.rng_state()
    first = (random.random(), np.random.rand(), torch.rand(1).item())
    _rng.restore_rng(state)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == first


# --------------------------------------------------------------------------- 3. bad newest file


def _corrupt(path: Path, kind: str) -> None:
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif kind == "random":
        path.write_bytes(random.Random(3).randbytes(path.stat().st_size))
    elif kind == "flipped":
        flip_tensor_byte(path)
    else:  # pragma: no cover
        raise AssertionError(kind)


@pytest.fixture(scope="module")
def three_epochs(tmp_path_factory, ctx) -> Path:
    ws = ws_of(tmp_path_factory.mktemp("three"), "ws")
    assert run_child(ctx, script.train, str(ws), 3) == 0
    return ws


@pytest.mark.parametrize("kind", ["empty", "truncated", "random", "flipped"])
def test_bad_newest_file_falls_back_with_warning_then_moved_aside(tmp_path, three_epochs, kind):
    ws = tmp_path / "ws"
    shutil.copytree(three_epochs, ws)
    good2 = load(ckpt(ws, 2))
    _corrupt(ckpt(ws, 3), kind)
    bad_bytes = ckpt(ws, 3).read_bytes()
    verify = kind == "flipped"

    if not verify:  # the cheap structural check already sees it: last_epoch falls back
        with pytest.warns(SucroseWarning, match=f"{STEM}_e3.pt"):
            assert sucrose.scenario(ws, NAME).last_epoch == 2

    ssc, model, optim = fresh(ws)
    if verify:
        with pytest.warns(SucroseWarning, match=f"skipping unreadable checkpoint .*{STEM}_e3.pt"):
            ssc.load_state_dict(model=model, optim=optim, verify=verify)
    else:  # already reported above: one warning per bad file, however often it is scanned
        with warnings.catch_warnings():
            warnings.simplefilter("error", SucroseWarning)
            ssc.load_state_dict(model=model, optim=optim, verify=verify)
    assert ssc.last_epoch == 2
    assert ssc.num_steps == 12
    assert_same_state(model.state_dict(), good2["model"])
    assert list(ssc.epoch_range(2)) == [2, 3]

    # the next save moves the bad file aside instead of overwriting it silently
    with pytest.warns(SucroseWarning, match=rf"moved 1 newer checkpoint.*{ABANDONED_FOLDER}.*{STEM}_e3.pt"):
        path = ssc.save_state_dict(1, model=model, optim=optim)
    ssc.close()
    assert path == ckpt(ws, 3)
    assert (ckpt_dir(ws) / ABANDONED_FOLDER / f"{STEM}_e3.pt").read_bytes() == bad_bytes
    assert _atomic.check_file(path, verify=True) is None
    assert load(path)["sucrose"]["epochs"] == 3
    assert sucrose.scenario(ws, NAME).last_epoch == 3


def test_flipped_byte_is_only_caught_with_verify(tmp_path, three_epochs):
    """The documented limit: the default check is structural; torch itself has no CRC check."""
    ws = tmp_path / "ws"
    shutil.copytree(three_epochs, ws)
    flip_tensor_byte(ckpt(ws, 3))
    assert _atomic.check_file(ckpt(ws, 3)) is None
    assert "CRC" in _atomic.check_file(ckpt(ws, 3), verify=True)
    ssc, model, optim = fresh(ws)
    with warnings.catch_warnings():
        warnings.simplefilter("error", SucroseWarning)
        ssc.load_state_dict(model=model, optim=optim)  # verify=False: loads the flipped file
    assert ssc.last_epoch == 3


def test_all_files_unreadable_is_a_clear_error(tmp_path, three_epochs):
    ws = tmp_path / "ws"
    shutil.copytree(three_epochs, ws)
    for epochs in (1, 2, 3):
        _corrupt(ckpt(ws, epochs), "truncated")
    ssc, model, optim = fresh(ws)
    with pytest.warns(SucroseWarning), pytest.raises(CheckpointError, match="none of the 3 checkpoint"):
        ssc.load_state_dict(model=model, optim=optim)


def test_leftover_temp_files_are_ignored_and_cleaned(tmp_path, three_epochs):
    ws = tmp_path / "ws"
    shutil.copytree(three_epochs, ws)
    leftover = ckpt_dir(ws) / f".{STEM}_e4.pt.12345.678{TMP_SUFFIX}"
    leftover.write_bytes(b"half a checkpoint")
    ssc, model, optim = fresh(ws)
    with warnings.catch_warnings():
        warnings.simplefilter("error", SucroseWarning)
        ssc.load_state_dict(model=model, optim=optim)
    assert ssc.last_epoch == 3 and leftover.exists()  # reading leaves it alone
    assert list(ssc.epoch_range(1)) == [3]  # training takes the lock and cleans up
    assert not leftover.exists()
    ssc.close()


def test_resuming_from_an_older_epoch_moves_newer_files_aside(tmp_path, three_epochs):
    ws = tmp_path / "ws"
    shutil.copytree(three_epochs, ws)
    newer = {e: ckpt(ws, e).read_bytes() for e in (2, 3)}
    ssc, model, optim = fresh(ws)
    ssc.load_state_dict(1, model=model, optim=optim)
    assert ssc.last_epoch == 1 and list(ssc.epoch_range(1)) == [1]
    with pytest.warns(SucroseWarning, match=f"moved 2 newer checkpoint.*{STEM}_e2.pt, {STEM}_e3.pt"):
        ssc.save_state_dict(1, model=model, optim=optim)
    ssc.close()
    assert sorted(final_files(ws)) == [1, 2]
    for epochs, raw in newer.items():
        assert (ckpt_dir(ws) / ABANDONED_FOLDER / f"{STEM}_e{epochs}.pt").read_bytes() == raw


def test_save_streams_into_a_hidden_temp_file_in_the_same_folder(tmp_path, monkeypatch):
    ws = ws_of(tmp_path, "ws")
    seen = []
    real = _atomic._serialize

    def spy(obj, stream):
        seen.append((Path(stream.name), ckpt(ws, 1).exists()))
        real(obj, stream)

    monkeypatch.setattr(_atomic, "_serialize", spy)
    ssc, model, _ = fresh(ws)
    ssc.save_state_dict(1, model=model)
    ssc.close()
    [(tmp, final_existed)] = seen
    assert tmp.parent == ckpt_dir(ws)  # same folder: the rename is atomic (one filesystem)
    assert tmp.name.startswith(f".{STEM}_e1.pt.") and tmp.name.endswith(TMP_SUFFIX)
    assert not final_existed  # the final name appears only by the rename
    assert not tmp.exists() and ckpt(ws, 1).is_file()


# --------------------------------------------------------------------------- 4. failing writes


def _partial_then(err: OSError):
    def serialize(obj, stream):
        stream.write(b"PK\x03\x04" + b"x" * 4096)  # some bytes made it to disk
        raise err

    return serialize


class _FullDisk:
    """A stream that takes ``room`` bytes and then fails like a full disk."""

    def __init__(self, stream, room: int) -> None:
        self.stream, self.room = stream, room

    def write(self, data) -> int:
        if len(data) > self.room:
            self.stream.write(bytes(data[: self.room]))
            self.room = 0
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.room -= len(data)
        return self.stream.write(data)

    def flush(self) -> None:
        self.stream.flush()


def _torch_save_into_full_disk(obj, stream):
    torch.save(obj, _FullDisk(stream, 3000))  # torch turns the OSError into a RuntimeError


def _saved_once(ws: Path):
    ssc, model, optim = fresh(ws)
    ssc.save_state_dict(1, model=model, optim=optim)
    return ssc, model, optim


@pytest.mark.parametrize(
    ("how", "message"),
    [
        ("serialize_enospc", "disk is full"),
        ("torch_save_enospc", "disk is full"),
        ("dev_full", "disk is full"),
        ("open_eacces", "permission denied"),
    ],
)
def test_failed_write_keeps_old_checkpoint_and_epoch(tmp_path, monkeypatch, how, message):
    ws = ws_of(tmp_path, "ws")
    ssc, model, optim = _saved_once(ws)
    before = ckpt(ws, 1).read_bytes()
    for _ in range(3):  # change the weights, so the failed save had something new to write
        model(torch.randn(4, 8)).sum().backward()
        optim.step()
        ssc.step()

    if how == "serialize_enospc":
        monkeypatch.setattr(_atomic, "_serialize", _partial_then(OSError(errno.ENOSPC, "No space left")))
    elif how == "torch_save_enospc":
        monkeypatch.setattr(_atomic, "_serialize", _torch_save_into_full_disk)
    elif how == "dev_full":  # the kernel's own ENOSPC, through torch.save and Python's buffered file
        real_open = open

        def dev_full(path, mode="r", **kwargs):  # kwargs: the exclusive opener
            return real_open("/dev/full", mode)

        monkeypatch.setattr(_atomic, "open", dev_full, raising=False)
    else:

        def deny(path, mode="r", **kwargs):  # kwargs: the exclusive opener
            raise PermissionError(errno.EACCES, "Permission denied", str(path))

        monkeypatch.setattr(_atomic, "open", deny, raising=False)

    with pytest.raises(CheckpointError, match=message) as info:
        ssc.save_state_dict(1, model=model, optim=optim)
    assert f"{STEM}_e2.pt" in str(info.value)  # says which checkpoint failed
    assert ssc.last_epoch == 1  # the epoch counter did not advance
    assert sorted(final_files(ws)) == [1]
    assert ckpt(ws, 1).read_bytes() == before  # the old checkpoint is intact...
    assert load(ckpt(ws, 1))["sucrose"]["epochs"] == 1  # ...and loads
    assert not temp_files(ws), "the failed save left its temporary file"

    monkeypatch.undo()
    path = ssc.save_state_dict(1, model=model, optim=optim)  # the retry saves the same epoch stamp
    assert path == ckpt(ws, 2)
    assert load(path)["step"] == 3
    assert_same_state(load(path)["model"], model.state_dict())
    ssc.close()


def test_failed_write_with_interval_does_not_count_the_epoch(tmp_path, monkeypatch):
    ws = ws_of(tmp_path, "ws")
    ssc, model, _ = fresh(ws)
    assert ssc.save_state_dict(2, model=model) is None  # epoch 1 counted, not saved
    monkeypatch.setattr(_atomic, "_serialize", _partial_then(OSError(errno.ENOSPC, "No space left")))
    with pytest.raises(CheckpointError):
        ssc.save_state_dict(2, model=model)
    assert ssc.last_epoch == 1
    monkeypatch.undo()
    assert ssc.save_state_dict(2, model=model) == ckpt(ws, 2)
    ssc.close()


# --------------------------------------------------------------------------- 5. two processes


def _wait_for(path: Path, timeout: float = 20.0) -> None:
    end = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > end:  # pragma: no cover
            pytest.fail(f"{path} did not appear in {timeout} s")
        time.sleep(0.01)


def test_second_process_is_refused_and_dead_holders_lock_is_reclaimed(tmp_path, ctx):
    ws = ws_of(tmp_path, "ws")
    marker = tmp_path / "held"
    holder = ctx.Process(target=script.hold, args=(str(ws), str(marker)))
    holder.start()
    try:
        _wait_for(marker)
        pid = holder.pid
        assert marker.read_text() == str(pid)

        ssc, model, optim = fresh(ws)  # this test process is the second process
        with pytest.raises(LockError, match=rf"pid {pid} on host {socket.gethostname()} \(started 20\d\d-"):
            ssc.epoch_range(1)
        with pytest.raises(LockError, match=f"pid {pid}"):
            ssc.save_state_dict(1, model=model)
        assert not final_files(ws)
        # reading never needs the lock
        assert ssc["optim.lr"] == 0.05 and ssc.config_of("data") == {"size": 96, "batch": 16}
        assert ssc.last_ckpt() is None and ssc.last_epoch == 0
        assert ssc.load_state_dict(model=model) == {}
        # a child process is refused too
        log = tmp_path / "second.log"
        assert run_child(ctx, script.train, str(ws), 1, log=str(log)) != 0
        assert not final_files(ws)

        holder.kill()
        holder.join()
        with pytest.warns(SucroseWarning, match=rf"reclaimed the lock .* pid {pid} .*no longer running"):
            assert list(ssc.epoch_range(1)) == [0]
        ssc.save_state_dict(1, model=model, optim=optim)
        ssc.close()
    finally:
        if holder.is_alive():  # pragma: no cover
            holder.kill()
            holder.join()
    # after a clean finish, the next run takes the lock without a warning
    with warnings.catch_warnings():
        warnings.simplefilter("error", SucroseWarning)
        assert run_child(ctx, script.train, str(ws), 2) == 0
        again = sucrose.scenario(ws, NAME)
        assert list(again.epoch_range(1)) == [2]
        again.close()


def test_holder_exiting_cleanly_leaves_no_stale_lock(tmp_path, ctx):
    ws = ws_of(tmp_path, "ws")
    marker = tmp_path / "held"
    holder = ctx.Process(target=script.hold, args=(str(ws), str(marker)))
    holder.start()
    _wait_for(marker)
    Path(str(marker) + ".stop").write_text("")
    holder.join(20)
    assert holder.exitcode == 0
    ssc = sucrose.scenario(ws, NAME)
    with warnings.catch_warnings():
        warnings.simplefilter("error", SucroseWarning)
        ssc.epoch_range(1)
    ssc.close()


# --------------------------------------------------------------------------- 6. weights_only


class NotAStateDict:
    """An arbitrary object: torch pickles it by reference, weights_only=True refuses it."""

    def __init__(self, value: int) -> None:
        self.value = value


def test_arbitrary_pickles_need_an_explicit_opt_in(tmp_path):
    ws = ws_of(tmp_path, "ws")
    ssc, model, _ = fresh(ws)
    ssc.save_state_dict(1, model=model)
    ssc.save_state_dict(1, model=model, extra=NotAStateDict(7))
    ssc.close()

    ssc, model, _ = fresh(ws)
    with pytest.raises(UnsafeCheckpointError, match=r"loader_kwds=\{'weights_only': False\}") as info:
        ssc.load_state_dict(model=model)
    assert f"{STEM}_e2.pt" in str(info.value)
    assert ssc.last_epoch == 2  # it did not silently fall back to the older, safe file
    rest = ssc.load_state_dict(model=model, loader_kwds={"weights_only": False})
    assert isinstance(rest["extra"], NotAStateDict) and rest["extra"].value == 7
    # the safe older file still loads with the default
    assert ssc.load_state_dict(1, model=model) == {}
