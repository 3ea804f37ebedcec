"""The checkpoint store owns every rule about a scenario's folder; the package has no import circle."""

from __future__ import annotations

import ast
import os
import warnings
from pathlib import Path

import pytest
import torch

import sucrose_lightning as sucrose
from sucrose_lightning._record import META_KEY
from sucrose_lightning.errors import CheckpointError, LockError, SucroseConfigWarning, SucroseWarning
from sucrose_lightning.store import CheckpointStore

PACKAGE = Path(sucrose.__file__).parent


def _save(path: Path, **extra: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"w": torch.zeros(2), **extra}, path)


def test_resume_target_is_most_advanced_readable_of_its_extension(seed_ws: Path) -> None:
    ssc = sucrose.SucroseScenario(seed_ws, "base/case1")
    store, lay = ssc.store, ssc.layout
    for epochs, step in [(1, None), (2, None), (2, 7), (10, None)]:
        _save(lay.ckpt_path(epochs, step))
    lay.ckpt_path(10).write_bytes(b"truncated")  # newest is damaged: skipped with a warning
    _save(lay.ckpt_path(5, None, ".ckpt"))  # the other loop's file does not count for .pt
    with pytest.warns(SucroseWarning, match="skipping unreadable checkpoint"):
        target = store.resume_target(".pt")
    assert target is not None and (target.epochs, target.step) == (2, 7)
    assert ssc.last_epoch == 2
    assert [(c.epochs, c.step) for c in store.files()] == [
        (1, None),
        (2, None),
        (2, 7),
        (5, None),
        (10, None),
    ]
    assert store.resume_target(".ckpt").epochs == 5  # type: ignore[union-attr]


def test_make_room_moves_files_at_or_past_the_new_stamp_aside(seed_ws: Path) -> None:
    store = sucrose.SucroseScenario(seed_ws, "base").store
    lay = store.layout
    for epochs in (1, 2, 3):
        _save(lay.ckpt_path(epochs))
    _save(lay.ckpt_path(2, 5))
    with pytest.warns(SucroseWarning, match=r"moved 3 newer checkpoint\(s\)"):
        moved = store.make_room(lay.ckpt_path(2), "test")
    assert sorted(p.name for p in moved) == ["base_e2.pt", "base_e2_s5.pt", "base_e3.pt"]
    assert all(p.parent == lay.abandoned_dir for p in moved)
    assert [c.epochs for c in store.files()] == [1]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert store.make_room(lay.ckpt_path(4), "test") == []  # nothing newer: no warning
        assert store.make_room(lay.ckpts_dir / "last.ckpt", "test") == []  # not a stamp


def test_retention_never_deletes_unreadable_files(seed_ws: Path) -> None:
    store = sucrose.SucroseScenario(seed_ws, "base").store
    lay = store.layout
    for epochs in range(1, 6):
        _save(lay.ckpt_path(epochs))
    lay.ckpt_path(2).write_bytes(b"")
    plan = store.retention(2)
    assert [c.epochs for c in plan.delete] == [1, 3]
    assert [c.epochs for c in plan.keep] == [4, 5]
    assert [c.epochs for c in plan.unreadable] == [2]
    deleted, failed = store.delete(plan.delete)
    assert failed == [] and len(deleted) == 2
    assert [c.epochs for c in store.files()] == [2, 4, 5]


def test_writer_session_is_exclusive_and_cleans_temps_of_dead_saves(seed_ws: Path) -> None:
    store = sucrose.SucroseScenario(seed_ws, "base").store
    lay = store.layout
    lay.ckpts_dir.mkdir(parents=True)
    dead = lay.ckpts_dir / ".base_e1.pt.999999999.1.tmp"
    dead.write_bytes(b"partial")
    session = store.writer()
    try:
        assert not dead.exists()
        assert store.problems() == ([], [], 0)
    finally:
        session.release()


def test_two_processes_cannot_hold_one_writer_session(seed_ws: Path, tmp_path: Path) -> None:
    import subprocess
    import sys

    ready = tmp_path / "ready"
    code = (
        "import sys, sucrose_lightning as s, pathlib\n"
        f"st = s.SucroseScenario({str(seed_ws)!r}, 'base').store\n"
        "lock = st.writer()\n"
        f"pathlib.Path({str(ready)!r}).write_text('x')\n"
        "sys.stdin.read()\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE)
    try:
        while not ready.exists():  # the child writes the marker once it holds the lock
            if child.poll() is not None:
                raise AssertionError("child died before taking the lock")
        with pytest.raises(LockError, match=f"pid {child.pid}"):
            CheckpointStore(sucrose.SucroseScenario(seed_ws, "base").layout).writer()
    finally:
        child.stdin.close()  # type: ignore[union-attr]
        child.wait(timeout=60)


def test_record_from_a_newer_format_is_refused_by_name(seed_ws: Path) -> None:
    ssc = sucrose.SucroseScenario(seed_ws, "base")
    path = ssc.layout.ckpt_path(1)
    _save(path, **{META_KEY: {"format": 99, "scenario": "base"}})
    with pytest.raises(CheckpointError, match=r"base_e1\.pt was written by a newer sucrose_lightning"):
        ssc.load_state_dict()


def test_plain_loop_warns_about_a_changed_config(seed_ws: Path) -> None:
    model = torch.nn.Linear(2, 2)
    with sucrose.SucroseScenario(seed_ws, "base") as ssc:
        ssc.save_state_dict(1, model=model)
    original = (seed_ws / "config.yaml").read_text()
    (seed_ws / "config.yaml").write_text(original.replace("model.hidden_dim: 100", "model.hidden_dim: 64"))
    ssc = sucrose.SucroseScenario(seed_ws, "base")
    with pytest.warns(SucroseConfigWarning, match=r"(?s)model\.hidden_dim: 100 -> 64.*lr: set them again"):
        ssc.load_state_dict(model=model)
    (seed_ws / "config.yaml").write_text(original)
    with warnings.catch_warnings():  # the config it was saved with: silent
        warnings.simplefilter("error")
        sucrose.SucroseScenario(seed_ws, "base").load_state_dict(model=model)


# ------------------------------------------------------------------ the house's shape


def _imports(path: Path) -> set[str]:
    """Package modules that ``path`` imports anywhere (top level, functions, TYPE_CHECKING)."""
    mod = path.relative_to(PACKAGE.parent).with_suffix("").as_posix().replace("/", ".")
    if mod.endswith(".__init__"):
        mod = mod[: -len(".__init__")]
    package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            names = [f"{target}.{a.name}" for a in node.names]
            candidates = [target, *names]
        elif isinstance(node, ast.Import):
            candidates = [a.name for a in node.names]
        else:
            continue
        for name in candidates:
            if name.startswith("sucrose_lightning") and _module_file(name) is not None and name != mod:
                out.add(name)
    return out


def _module_file(name: str) -> Path | None:
    rel = Path(*name.split("."))
    for candidate in (PACKAGE.parent / rel.with_suffix(".py"), PACKAGE.parent / rel / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def test_the_package_has_no_import_circle() -> None:
    graph = {}
    for path in PACKAGE.rglob("*.py"):
        mod = path.relative_to(PACKAGE.parent).with_suffix("").as_posix().replace("/", ".")
        mod = mod.removesuffix(".__init__")
        # a package's __init__ is imported by every submodule: count only edges between leaves
        graph[mod] = {m for m in _imports(path) if _module_file(m).name != "__init__.py"}  # type: ignore[union-attr]
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                raise AssertionError("import circle: " + " -> ".join([*trail[trail.index(nxt) :], nxt]))
            if nxt not in state:
                visit(nxt, [*trail, nxt])
        state[node] = 2

    for mod in sorted(graph):
        if mod not in state:
            visit(mod, [mod])
    assert "sucrose_lightning.scenario" not in graph["sucrose_lightning.lightning"]


def test_library_code_never_imports_the_cli() -> None:
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel.startswith("cli") or rel == "__main__.py":
            continue
        assert not any(m.startswith("sucrose_lightning.cli") for m in _imports(path)), rel


def test_no_module_is_a_crowded_room() -> None:
    sizes = {
        p.relative_to(PACKAGE).as_posix(): len(p.read_text().splitlines()) for p in PACKAGE.rglob("*.py")
    }
    assert {k: v for k, v in sizes.items() if v > 450} == {}


def test_docstring_examples_are_never_comment_only() -> None:
    offenders = [
        f"{p.relative_to(PACKAGE)}:{i}"
        for p in PACKAGE.rglob("*.py")
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if line.lstrip().startswith(">>> #")
    ]
    assert offenders == []


def test_config_core_imports_no_torch_in_a_fresh_process() -> None:
    import subprocess
    import sys

    code = (
        "import sys, sucrose_lightning, sucrose_lightning.store, sucrose_lightning.inventory\n"
        "heavy = [m for m in ('torch', 'lightning', 'tensorboard') if m in sys.modules]\n"
        "print(heavy)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=os.environ
    )
    assert out.stdout.strip() == "[]"
