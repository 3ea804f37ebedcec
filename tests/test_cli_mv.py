"""``sucrose mv`` and the ``record`` problem of ``sucrose check``, on real files.

Each test writes a small workspace with real ``torch.save`` checkpoints named by
:meth:`Layout.ckpt_name`, then runs :func:`sucrose_lightning.cli.main` or the compute functions.
"""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from sucrose_lightning.cli import main
from sucrose_lightning.cli.check import check_report
from sucrose_lightning.cli.mv import MoveRefused, move, plan_move
from sucrose_lightning.config import WorkspaceSettings, load_config
from sucrose_lightning.layout import Layout

CONFIG = """\
# the team's workspace
workspace:
  ckpts_folder: ckpts

base:            # the root
  model.dim: 8
  optim.lr: 0.01

base/a:  # renamed by the tests
  model.dim: 16
  notes: "base/a: stays"

'base/b':
  optim.lr: 0.1
"""
SETTINGS = WorkspaceSettings()


def _record(name: str, epochs: int) -> dict:
    return {"format": 1, "scenario": name, "epochs": epochs, "step": 0, "config": {}, "rng": {}}


def _ckpt(ws: Path, name: str, epochs: int, step: int | None = None, ext: str = ".pt", label=None) -> Path:
    lay = Layout(ws, name, SETTINGS)
    path = lay.ckpt_path(epochs, step, ext, label)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"sucrose": _record(name, epochs), "state_dict": {"w": torch.full((3,), float(epochs))}}, path)
    return path


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "config.yaml").write_text(CONFIG)
    _ckpt(ws, "base/a", 1)
    _ckpt(ws, "base/a", 2, 7)
    _ckpt(ws, "base/a", 3, ext=".ckpt", label="best")
    _ckpt(ws, "base", 4)
    abandoned = ws / "ckpts/base/a/.abandoned"
    abandoned.mkdir()
    torch.save({"sucrose": _record("base/a", 5)}, abandoned / "base_a_e5.1.pt")
    (ws / "ckpts/base/a/notes.txt").write_text("not a checkpoint")
    torch.save({"sucrose": _record("base/a", 3)}, ws / "ckpts/base/a/last.ckpt")  # Lightning's name
    logs = ws / "logs/base/a/version_0"
    logs.mkdir(parents=True)
    (logs / "events.out.tfevents.1").write_bytes(b"x")
    return ws


def cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def _scenario_of(path: Path) -> str:
    return torch.load(path, weights_only=True)["sucrose"]["scenario"]


def _tree(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def test_mv_renames_key_folders_files_and_records(ws: Path) -> None:
    code, out, err = cli("-w", str(ws), "mv", "base/a", "other/x")
    assert code == 0, err
    assert "renamed scenario 'base/a' to 'other/x'" in out
    assert (ws / "config.yaml").read_text() == CONFIG.replace("base/a:  #", "other/x:  #")
    assert list(load_config(ws).domains) == ["workspace", "base", "other/x", "base/b"]
    assert not (ws / "ckpts/base/a").exists() and not (ws / "logs/base/a").exists()
    assert (ws / "logs/other/x/version_0/events.out.tfevents.1").read_bytes() == b"x"
    folder = ws / "ckpts/other/x"
    assert _tree(folder) == [
        ".abandoned/other_x_e5.1.pt",
        ".sucrose.lock",
        "last.ckpt",
        "notes.txt",
        "other_x_e1.pt",
        "other_x_e2_s7.pt",
        "other_x_e3.best.ckpt",
    ]
    for name in (
        "other_x_e1.pt",
        "other_x_e2_s7.pt",
        "other_x_e3.best.ckpt",
        ".abandoned/other_x_e5.1.pt",
        "last.ckpt",
    ):
        assert _scenario_of(folder / name) == "other/x"
    data = torch.load(folder / "other_x_e2_s7.pt", weights_only=True)
    assert data["state_dict"]["w"].tolist() == [2.0, 2.0, 2.0] and data["sucrose"]["epochs"] == 2
    assert _scenario_of(ws / "ckpts/base/base_e4.pt") == "base"  # the parent is untouched
    assert check_report(ws).ok
    assert cli("-w", str(ws), "show", "other/x")[0] == 0


def test_mv_dry_run_and_json_change_nothing(ws: Path) -> None:
    before = {p: p.read_bytes() for p in ws.rglob("*") if p.is_file()}
    code, out, _ = cli("-w", str(ws), "mv", "base/a", "base/c", "--dry-run")
    assert code == 0
    assert "would rename key 'base/a' -> 'base/c'" in out and "dry run: nothing changed" in out
    assert "would rewrite record" in out
    code, out, _ = cli("-w", str(ws), "mv", "base/a", "base/c", "--dry-run", "--format", "json")
    data = json.loads(out)
    assert data["dry_run"] and data["done"] == [] and data["failed"] is None
    kinds = [s["kind"] for s in data["steps"]]
    assert kinds == ["config", "folder", *["file"] * 4, "folder", *["record"] * 5]
    assert {p: p.read_bytes() for p in ws.rglob("*") if p.is_file()} == before


def test_mv_quotes_key_when_needed(ws: Path) -> None:
    assert cli("-w", str(ws), "mv", "base/b", "base/yes")[0] == 0
    assert (ws / "config.yaml").read_text() == CONFIG.replace("'base/b':", "'base/yes':")
    assert cli("-w", str(ws), "mv", "base/a", "true")[0] == 0
    assert (ws / "config.yaml").read_text().count('"true":  # renamed') == 1
    assert "true" in load_config(ws).domains


@pytest.mark.parametrize(
    ("old", "new", "says"),
    [
        ("base/a", "base/b", "already a domain"),
        ("base/a", "base/../x", "bad new name"),
        ("base/a", "workspace", "holds layout settings"),
        ("nope", "x", "not a domain"),
        ("../base/a", "x", "bad old name"),
        ("base", "top", "child domains (base/a, base/b)"),
        ("base/a", "base", "inside"),
        ("base/a", "base/a/x", "inside"),
    ],
)
def test_mv_refusals_change_nothing(ws: Path, old: str, new: str, says: str) -> None:
    before = {p: p.read_bytes() for p in ws.rglob("*") if p.is_file()}
    code, _, err = cli("-w", str(ws), "mv", old, new)
    assert code == 2 and says in err and "nothing changed" in err, err
    assert {p: p.read_bytes() for p in ws.rglob("*") if p.is_file()} == before


def test_mv_refuses_when_new_has_folders(ws: Path) -> None:
    (ws / "logs/fresh").mkdir(parents=True)
    code, _, err = cli("-w", str(ws), "mv", "base/a", "fresh")
    assert code == 2 and "already has folders" in err
    assert (ws / "config.yaml").read_text() == CONFIG


def test_mv_refuses_while_trained(ws: Path) -> None:
    marker = ws.parent / "locked"
    holder = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        from sucrose_lightning.config import WorkspaceSettings
        from sucrose_lightning.layout import Layout
        from sucrose_lightning.store import CheckpointStore
        lock = CheckpointStore(Layout(Path({str(ws)!r}), "base/a", WorkspaceSettings())).writer()
        Path({str(marker)!r}).write_text("held")
        print("held", flush=True)
        sys.stdin.read()
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", holder], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "held\n"
        assert marker.read_text() == "held"
        code, _, err = cli("-w", str(ws), "mv", "base/a", "base/c")
        assert code == 2 and f"pid {proc.pid}" in err and "nothing changed" in err, err
        assert (ws / "config.yaml").read_text() == CONFIG
        assert (ws / "ckpts/base/a/base_a_e1.pt").exists()
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=30)
    assert cli("-w", str(ws), "mv", "base/a", "base/c")[0] == 0


def test_check_reports_record_of_another_scenario(ws: Path) -> None:
    # the domain renamed by hand, its folder and files too, the records not
    (ws / "config.yaml").write_text(CONFIG.replace("base/a:", "base/c:"))
    folder = ws / "ckpts/base/c"
    (ws / "ckpts/base/a").rename(folder)
    for path in folder.glob("base_a_*"):
        path.rename(folder / path.name.replace("base_a_", "base_c_"))
    report = check_report(ws)
    records = [p for p in report.problems if p.kind == "record"]
    assert [Path(p.path).name for p in records] == ["base_c_e1.pt", "base_c_e2_s7.pt", "base_c_e3.best.ckpt"]
    assert "'sucrose mv base/a base/c'" in records[0].message
    code, out, _ = cli("-w", str(ws), "check", "--format", "json")
    assert code == 1
    entry = next(p for p in json.loads(out)["problems"] if p["kind"] == "record")
    assert entry["scenario"] == "base/c" and entry["recorded"] == "base/a"
    assert set(entry) == {"kind", "path", "message", "scenario", "recorded"}
    # the suggested command finishes the rename: records rewritten, logs moved
    steps = plan_move(ws, load_config(ws), "base/a", "base/c")
    assert [s.kind for s in steps] == ["file", "folder", *["record"] * 5]
    code, _, err = cli("-w", str(ws), "mv", "base/a", "base/c")
    assert code == 0, err
    assert check_report(ws).ok
    assert _scenario_of(folder / "base_c_e1.pt") == "base/c"
    assert (ws / "logs/base/c/version_0").is_dir()


def test_check_copied_file_and_foreign_files(ws: Path) -> None:
    target = Layout(ws, "base/b", SETTINGS).ckpt_path(1)
    target.parent.mkdir(parents=True)
    target.write_bytes((ws / "ckpts/base/a/base_a_e1.pt").read_bytes())
    torch.save({"state_dict": {}}, Layout(ws, "base/b", SETTINGS).ckpt_path(2))  # no record
    records = [p for p in check_report(ws).problems if p.kind == "record"]
    assert len(records) == 1 and "copied from scenario 'base/a'" in records[0].message


def test_interrupted_mv_reports_and_finishes(ws: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sucrose_lightning.cli import mv

    real = mv._rewrite_record
    calls = []

    def flaky(path: str, new: str) -> None:
        calls.append(path)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        real(path, new)

    monkeypatch.setattr(mv, "_rewrite_record", flaky)
    result = move(ws, "base/a", "base/c")
    assert result.failed is not None and "No space left" in result.failed[1]
    assert len(result.left) == 3 and [s.kind for s in result.done][-1] == "record"
    assert [p.kind for p in check_report(ws).problems] == ["record", "record"]
    monkeypatch.setattr(mv, "_rewrite_record", real)
    code, _, err = cli("-w", str(ws), "mv", "base/a", "base/c")
    assert code == 0, err
    assert check_report(ws).ok


def test_mv_failure_message_names_done_and_left(ws: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sucrose_lightning.cli import mv

    def broken(path: str, new: str) -> None:
        raise OSError(13, "Permission denied")

    monkeypatch.setattr(mv, "_rewrite_record", broken)
    code, out, err = cli("-w", str(ws), "mv", "base/a", "base/c")
    assert code == 1
    assert "renamed key 'base/a' -> 'base/c'" in out
    assert "could not rewrite record" in err and err.count("not done: rewrite record") == 4
    assert "run 'sucrose mv base/a base/c' again to finish" in err


def test_move_refused_is_usage_error(ws: Path) -> None:
    with pytest.raises(MoveRefused, match="nothing changed"):
        move(ws, "base/a", "base/b")


def test_mv_keeps_every_other_byte(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    text = (
        "\ufeff# caf\u00e9\r\nbase:\r\n  x: 1 # odd\r\n\r\n"
        "base/a : {y: 2}   # keep\r\nz: &anchor\r\n  w: 3\r\n"
    )
    (ws / "config.yaml").write_bytes(text.encode())
    (ws / "config.yaml").chmod(0o600)
    assert cli("-w", str(ws), "mv", "base/a", "base/\u00e9t\u00e9")[0] == 0
    assert (ws / "config.yaml").read_bytes() == text.replace("base/a :", "base/\u00e9t\u00e9 :").encode()
    assert (ws / "config.yaml").stat().st_mode & 0o777 == 0o600
    assert load_config(ws).domains["base/\u00e9t\u00e9"] == {"y": 2}


def test_peek_never_imports_or_runs_anything(tmp_path: Path) -> None:
    import pickle
    import zipfile

    from sucrose_lightning._peek import recorded_scenario

    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            import os

            return (os.system, (f"touch {marker}",))

    path = tmp_path / "evil.pt"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("evil/data.pkl", pickle.dumps({"x": Evil(), "sucrose": {"scenario": "base"}}))
    assert recorded_scenario(path) == "base"
    assert not marker.exists()
    (tmp_path / "junk.pt").write_bytes(b"PK not a zip")
    assert recorded_scenario(tmp_path / "junk.pt") is None


def test_check_with_record_problems_imports_no_torch(ws: Path) -> None:
    target = Layout(ws, "base/b", SETTINGS).ckpt_path(1)
    target.parent.mkdir(parents=True)
    target.write_bytes((ws / "ckpts/base/a/base_a_e1.pt").read_bytes())
    code = textwrap.dedent(
        f"""
        import contextlib, io, sys
        from sucrose_lightning.cli import main
        with contextlib.redirect_stdout(io.StringIO()) as out:
            rc = main(["-w", {str(ws)!r}, "check"])
        heavy = sorted({{m.split(".")[0] for m in sys.modules}} & {{"torch", "lightning", "numpy"}})
        print(rc, "copied from scenario 'base/a'" in out.getvalue(), heavy)
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip() == "1 True []", proc.stderr


def test_interrupt_reports_what_was_done(ws: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sucrose_lightning.cli import mv

    def interrupted(path: str, new: str) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(mv, "_rewrite_record", interrupted)
    result = move(ws, "base/a", "base/c")
    assert result.failed is not None and result.failed[1].startswith("KeyboardInterrupt")
    assert [s.kind for s in result.done] == ["config", "folder", *["file"] * 4, "folder"]
    assert not (ws / "ckpts/base/c/.sucrose.lock").read_bytes()  # the lock was given back
