"""Kill test for Lightning: SIGKILL a training process at random moments, restart it until done.

Whatever moment the run dies, the next start resumes from the newest complete checkpoint, no
file with a final checkpoint name is ever partial, and the final weights are bitwise equal to
an uninterrupted run's. Training children are forked from a forkserver that has torch and
lightning imported (see ``lit_helpers.forkserver``), so a restart costs a fraction of a second.
"""

from __future__ import annotations

import random
from pathlib import Path

import lit_helpers as H
import pytest
import torch

import sucrose_lightning as sucrose
from sucrose_lightning import _atomic

EPOCHS = 10
BATCHES = 32  # 128 samples in batches of 4
TOTAL = EPOCHS * BATCHES
MIN_KILLS = 12
CONFIG = H.CONFIG.replace("data.n: 32", "data.n: 128").replace("data.batch_size: 8", "data.batch_size: 4")
pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")


def _run(ctx, ws: Path, journal: Path, *, signal_step: int | None = None, delay: float = 0.0) -> tuple:
    """Start one training process. With ``signal_step``, SIGKILL it ``delay`` s after its global step
    reached ``signal_step`` (a random moment: the next batches, a save, its rename); with
    ``signal_step=None`` and ``delay > 0``, ``delay`` s after it was started (during its startup
    or restore); with neither, let it finish. Returns ``(exitcode, killed)``.
    """
    reached = ctx.Event()
    args = (str(ws), "base", EPOCHS, str(journal), signal_step, reached)
    proc = ctx.Process(target=H.child_train, args=args)
    proc.start()
    if signal_step is not None:
        # wait for the step, or for the process to end first (then its sentinel ends the wait)
        from multiprocessing.connection import wait

        while not reached.is_set() and proc.is_alive():
            wait([proc.sentinel], timeout=0.05)
        proc.join(delay)
    elif delay > 0:
        proc.join(delay)
    else:
        proc.join(120)
    killed = proc.is_alive()
    if killed:
        proc.kill()
        proc.join()
    return proc.exitcode, killed


def test_sigkill_at_random_moments_then_resume_is_bitwise_equal(tmp_path):
    ctx = H.forkserver()
    rng = random.Random(20240521)
    ref_ws = H.write_workspace(tmp_path / "ref", CONFIG)
    assert _run(ctx, ref_ws, tmp_path / "ref.journal") == (0, False)
    ref = sucrose.SucroseScenario(ref_ws, "base")

    ws = H.write_workspace(tmp_path / "killed", CONFIG)
    ssc = sucrose.SucroseScenario(ws, "base")
    journal = tmp_path / "killed.journal"
    kills = 0
    for i in range(MIN_KILLS):
        newest = ssc.ckpts()[-1] if ssc.ckpts() else None
        done = 0 if newest is None else newest.step if newest.step is not None else newest.epochs * BATCHES
        if i % 4 == 3:  # during startup / restore
            code, killed = _run(ctx, ws, journal, delay=rng.uniform(0.0, 0.3))
        else:  # in training: around an epoch end (the save) or anywhere
            target = done + rng.randint(1, 2 * BATCHES)
            if rng.random() < 0.5:
                target = (target // BATCHES + 1) * BATCHES  # the last batch of an epoch: then its save
            target = min(target, TOTAL - BATCHES)
            code, killed = _run(ctx, ws, journal, signal_step=target, delay=rng.uniform(0.0, 0.02))
        assert killed or code == 0
        kills += killed
        # every file with a final name is complete, and progress never goes backwards
        for ckpt in ssc.ckpts():
            assert _atomic.check_file(ckpt.path, verify=True) is None, ckpt.path
        if newest is not None:
            assert ssc.ckpts()[-1].order >= newest.order
    assert kills >= MIN_KILLS - 2, f"only {kills} kills landed"
    assert _run(ctx, ws, journal) == (0, False)  # the final, undisturbed restart

    starts = [tuple(map(int, line.split(","))) for line in journal.read_text().split()]
    assert starts == sorted(starts), "a restart went back to an older checkpoint"
    assert len(set(starts)) > 3, f"restarts did not resume: {starts}"
    assert [c.epochs for c in ssc.ckpts()] == list(range(1, EPOCHS + 1))
    a = torch.load(ref.last_ckpt(), weights_only=False)
    b = torch.load(ssc.last_ckpt(), weights_only=False)
    assert a["global_step"] == b["global_step"] == TOTAL
    for key, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][key]), key
    for sa, sb in zip(a["optimizer_states"], b["optimizer_states"], strict=True):
        assert sa["param_groups"] == sb["param_groups"]
    print(f"{kills} kills; runs resumed from (epochs, step) {starts}")
