"""Kill test for Lightning: a training process SIGKILLed at chosen moments, restarted until done.

Each child kills itself at a point chosen (from a seeded RNG) before it starts: right after the
restore, half-way through writing a checkpoint, with a checkpoint written but not renamed, or
after a given batch. So every kill lands, at a known point, however fast the machine. Whatever
moment the run dies, the next start resumes from the newest complete checkpoint, no
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
KILLS = 12
CONFIG = H.CONFIG.replace("data.n: 32", "data.n: 128").replace("data.batch_size: 8", "data.batch_size: 4")
pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")


def _run(ctx, ws: Path, journal: Path, die: tuple[str, int] | None = None) -> int:
    """Start one training process that, with ``die``, SIGKILLs itself at that exact point
    (see ``lit_helpers.child_train``); returns its exit code (``-9`` when it died)."""
    proc = ctx.Process(target=H.child_train, args=(str(ws), "base", EPOCHS, str(journal), die))
    proc.start()
    proc.join(120)
    if proc.is_alive():  # pragma: no cover - a hung child fails the test, never hangs it
        proc.kill()
        proc.join()
        raise AssertionError("a training child hung")
    return proc.exitcode


KINDS = ["step", "write", "step", "start", "step", "rename"]


def _plan(rng: random.Random, i: int, done: int) -> tuple[str, int]:
    """Where the ``i``-th child dies: right after restoring, inside a save (half-written, or complete
    but not renamed), or after a batch half an epoch to two epochs ahead (often an epoch's last,
    just before its save)."""
    kind = KINDS[i % len(KINDS)]
    if kind != "step":
        return kind, 0
    target = done + rng.randint(BATCHES // 2, 2 * BATCHES)
    if rng.random() < 0.5:
        target = (target // BATCHES + 1) * BATCHES  # the last batch of an epoch, just before its save
    return "step", min(target, TOTAL - 1)


def test_sigkill_at_chosen_moments_then_resume_is_bitwise_equal(tmp_path):
    ctx = H.forkserver()
    rng = random.Random(20240521)
    ref_ws = H.write_workspace(tmp_path / "ref", CONFIG)
    assert _run(ctx, ref_ws, tmp_path / "ref.journal") == 0
    ref = sucrose.SucroseScenario(ref_ws, "base")

    ws = H.write_workspace(tmp_path / "killed", CONFIG)
    ssc = sucrose.SucroseScenario(ws, "base")
    journal = tmp_path / "killed.journal"
    kinds = []
    for i in range(KILLS):
        newest = ssc.ckpts()[-1] if ssc.ckpts() else None
        done = 0 if newest is None else newest.step if newest.step is not None else newest.epochs * BATCHES
        die = _plan(rng, i, done)
        kinds.append(die[0])
        assert _run(ctx, ws, journal, die) == -9, die  # every kill lands: the child kills itself
        # every file with a final name is complete, and progress never goes backwards
        for ckpt in ssc.ckpts():
            assert _atomic.check_file(ckpt.path, verify=True) is None, ckpt.path
        if newest is not None:
            assert ssc.ckpts()[-1].order >= newest.order
    assert {"start", "write", "rename", "step"} <= set(kinds)
    assert _run(ctx, ws, journal) == 0  # the final, undisturbed restart

    starts = [tuple(map(int, line.split(","))) for line in journal.read_text().split()]
    assert starts == sorted(starts), "a restart went back to an older checkpoint"
    assert len(set(starts)) > 3, f"restarts did not resume: {starts}"
    assert [c.epochs for c in ssc.ckpts()] == list(range(1, EPOCHS + 1))
    assert not ssc.layout.temp_files()  # the last run cleaned up what the killed saves left
    a = torch.load(ref.last_ckpt(), weights_only=False)
    b = torch.load(ssc.last_ckpt(), weights_only=False)
    assert a["global_step"] == b["global_step"] == TOTAL
    for key, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][key]), key
    for sa, sb in zip(a["optimizer_states"], b["optimizer_states"], strict=True):
        assert sa["param_groups"] == sb["param_groups"]
    print(f"{len(kinds)} kills ({kinds}); runs resumed from (epochs, step) {starts}")
