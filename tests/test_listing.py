"""How a scenario's folder is listed: one pattern per extension, one walk for `ls`, resume order.

The faster listing (issue 15, P4/P10) must keep every rule of the old one: which names count,
their order, the newest-first order resuming walks, and the orphans an `os.walk` would find.
"""

from __future__ import annotations

import os
import random
import re
from pathlib import Path

import pytest

from sucrose_lightning.config import Config, WorkspaceSettings
from sucrose_lightning.inventory import find_orphans, list_tree
from sucrose_lightning.layout import VERSION_DIR, Layout
from sucrose_lightning.store import CheckpointStore

LABELS = ["", "best", "best-latest", "weights", "tmpx"]


def _names(rng: random.Random, head: str, n: int) -> list[str]:
    out = set()
    while len(out) < n:
        e, s = rng.randrange(12), rng.choice([None, rng.randrange(200)])
        label = rng.choice(LABELS)
        ext = rng.choice([".pt", ".ckpt"])
        out.add(f"{head}{e}{'' if s is None else f'_s{s}'}{f'.{label}' if label else ''}{ext}")
    return sorted(out)


@pytest.mark.parametrize("seed", range(6))
def test_newest_first_is_the_reverse_of_the_sorted_scan_past_its_first_maxima(
    tmp_path: Path, seed: int
) -> None:
    rng = random.Random(seed)
    lay = Layout(tmp_path, "base", WorkspaceSettings())
    lay.ckpts_dir.mkdir(parents=True)
    for name in _names(rng, "base_e", rng.randrange(0, 40)):
        (lay.ckpts_dir / name).write_bytes(b"")
    (lay.ckpts_dir / "other_e3.pt").write_bytes(b"")  # another scenario's name: never counted
    store = CheckpointStore(lay)
    for ext in (".pt", ".ckpt"):
        for select in (None, store.resumable, lambda label: label == "best"):
            scanned = lay.scan(ext, select)
            assert list(lay.newest_first(ext, select)) == scanned[::-1]  # every file, 0 to 40 of them
            assert all(select is None or select(lay.parse_label(Path(c.path).name, ext)[2]) for c in scanned)


def test_a_given_listing_counts_like_the_folder_itself_even_as_an_iterator(tmp_path: Path) -> None:
    lay = Layout(tmp_path, "base", WorkspaceSettings())
    lay.ckpts_dir.mkdir(parents=True)
    for name in ["base_e1.pt", "base_e2.ckpt", "base_e2.best.ckpt", "xase_e9.pt", "base_e3.pt.tmp"]:
        (lay.ckpts_dir / name).write_bytes(b"")
    store = CheckpointStore(lay)
    listed = os.listdir(lay.ckpts_dir)
    assert store.inventory(names=iter(listed)).ckpts == store.files() == store.inventory().ckpts
    assert [Path(c.path).name for c in store.files()] == ["base_e1.pt", "base_e2.best.ckpt", "base_e2.ckpt"]


def test_a_file_gone_since_the_listing_is_left_out_not_counted_as_damaged(tmp_path: Path) -> None:
    lay = Layout(tmp_path, "base", WorkspaceSettings())
    lay.ckpts_dir.mkdir(parents=True)
    (lay.ckpts_dir / "base_e1.pt").write_bytes(b"")  # empty: really unreadable
    info = CheckpointStore(lay).inventory(names=["base_e1.pt", "base_e2.pt"])  # e2 pruned meanwhile
    assert [c.epochs for c in info.ckpts] == [1] and info.unreadable_newer == 1 and info.newest is None
    assert info.newest_time == os.stat(lay.ckpts_dir / "base_e1.pt").st_mtime


def _walk_orphans(workspace: Path, cfg: Config) -> list[str]:
    """The orphans as the os.walk version of find_orphans (before the one-walk change) found them."""
    names, found = set(cfg.scenarios), set()
    for folder in {cfg.settings.ckpts_folder, cfg.settings.logs_folder}:
        root = workspace / folder
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            rel = Path(dirpath).relative_to(root).as_posix()
            if rel == "." or rel in names:
                continue
            parent, _, last = rel.rpartition("/")
            writer_dir = VERSION_DIR.fullmatch(last) or re.fullmatch(r"\d+\.\d+", last)
            if folder == cfg.settings.logs_folder and parent in names and writer_dir:
                continue
            if any(not f.startswith(".") for f in filenames):
                found.add(rel)
    return sorted(found)


def test_find_orphans_from_one_walk_matches_os_walk(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ckpts = ws / "ckpts"
    cfg = Config(ws / "config.yaml", {"base": {}, "base/a": {}})
    outside = tmp_path / "outside"
    (outside / "deep").mkdir(parents=True)
    (outside / "deep" / "x.pt").write_bytes(b"")
    for folder in ["base/a", "base/gone", "base/.abandoned", "hidden_only", "old/deeper", "empty", "linked"]:
        (ckpts / folder).mkdir(parents=True, exist_ok=True)
    (ckpts / "base/gone/base_gone_e1.pt").write_bytes(b"")
    (ckpts / "base/.abandoned/base_e9.pt").write_bytes(b"")  # sucrose's own folder: skipped
    (ckpts / "hidden_only/.sucrose.lock").write_bytes(b"")  # hidden files only: not an orphan
    (ckpts / "old/deeper/notes.txt").write_text("x")
    (ckpts / "old/broken").symlink_to(tmp_path / "nowhere")  # a broken link counts as a file
    (ckpts / "linked/elsewhere").symlink_to(outside)  # a link to a folder is not followed
    (ws / "logs/base/version_0").mkdir(parents=True)
    (ws / "logs/base/version_0/events.out").write_bytes(b"")
    (ws / "logs/stale").mkdir(parents=True)
    (ws / "logs/stale/events.out").write_bytes(b"")
    expected = ["base/gone", "old", "old/deeper", "stale"]
    assert _walk_orphans(ws, cfg) == expected
    assert find_orphans(ws, cfg) == expected
    assert find_orphans(ws, cfg, list_tree(ckpts)) == expected
    tree = list_tree(ckpts)
    assert "linked/elsewhere" not in tree and "base/.abandoned" not in tree
    assert tree["old"] == (["broken"] if (ckpts / "old/broken").is_file() else [], True)
