"""Shared helpers of the benchmark harness: timing, workspaces, configs, machine description.

Nothing here imports torch or lightning, so the helpers stay cheap for the cases that must
not pay for them (config start-up, lookups, the command line).
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PYTHON = sys.executable


# --------------------------------------------------------------------------- results


@dataclass
class Row:
    """One line of the results table.

    ``ours`` and each baseline are medians in ``unit``; ``ratio`` is ours / the first baseline
    (``None`` where a ratio means nothing); ``met`` is True / False, or None for an
    information-only line; ``status`` is "ok", "not available" or "FAILED".
    """

    case: str
    what: str
    unit: str
    ours: float | None = None
    baselines: list[tuple[str, float | None]] = field(default_factory=list)
    ratio: float | None = None
    target: str = ""
    met: bool | None = None
    runs: str = ""
    note: str = ""
    status: str = "ok"

    def as_dict(self) -> dict[str, Any]:
        return {
            "case": self.case,
            "what": self.what,
            "unit": self.unit,
            "ours": self.ours,
            "baselines": [[n, v] for n, v in self.baselines],
            "ratio": self.ratio,
            "target": self.target,
            "met": self.met,
            "runs": self.runs,
            "note": self.note,
            "status": self.status,
        }


class CheckFailed(AssertionError):
    """Both sides did not do the same, correct work: the timing would be meaningless."""


def check(condition: object, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


# --------------------------------------------------------------------------- timing


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def spread(values: Sequence[float]) -> str:
    """``min-max`` of ``values`` relative to their median, e.g. ``-3%/+8%``."""
    if not values:
        return ""
    mid = median(values)
    if mid == 0:
        return ""
    return f"{(min(values) / mid - 1) * 100:+.0f}%/{(max(values) / mid - 1) * 100:+.0f}%"


def interleave(sides: dict[str, Callable[[], float]], runs: int, warmup: int = 1) -> dict[str, list[float]]:
    """Run each side in turn, A B C A B C ..., ``runs`` times after ``warmup`` rounds.

    Each callable returns the seconds (or any measure) of one run; the order of the sides
    rotates every round so no side always runs right after the same other one.
    """
    names = list(sides)
    out: dict[str, list[float]] = {n: [] for n in names}
    for r in range(warmup + runs):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            value = sides[name]()
            if r >= warmup:
                out[name].append(value)
    return out


def per_call(fn: Callable[[], Any], number: int) -> float:
    """Seconds per call of ``fn`` over ``number`` calls (one measurement)."""
    t0 = time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - t0) / number


def run_child(
    args: Sequence[str], timeout: float, cwd: str | os.PathLike[str] | None = None
) -> dict[str, Any]:
    """Run a helper script in a fresh interpreter; its last stdout line is a JSON object."""
    proc = subprocess.run(
        [PYTHON, *args], capture_output=True, text=True, timeout=timeout, cwd=cwd, check=False
    )
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-15:]
        raise RuntimeError(f"{' '.join(map(str, args))} exited with {proc.returncode}:\n" + "\n".join(tail))
    lines = [ln for ln in proc.stdout.strip().splitlines() if ln.startswith("{")]
    if not lines:
        raise RuntimeError(f"{' '.join(map(str, args))} printed no result; stderr:\n{proc.stderr[-2000:]}")
    return json.loads(lines[-1])


# --------------------------------------------------------------------------- configs


def generate_config(domains: int, keys: int, max_depth: int = 8, seed: int = 0) -> tuple[str, list[str]]:
    """A ``config.yaml`` text of ``domains`` inheriting domains up to ``max_depth`` levels deep.

    Every domain sets ``keys`` dotted keys (ints, floats, strings, booleans and short lists),
    about half of them overriding a key of its ancestors. Returns the text and the domain
    names in file order (parents before children).
    """
    rng = random.Random(seed)
    names: list[str] = []
    depth: dict[str, int] = {}
    children: dict[str, int] = {}
    groups = ["model", "optim", "data", "trainer", "aug", "loss", "sched", "eval"]
    key_pool = [
        f"{g}.{sub}_{i}" for g in groups for sub in ("dim", "rate", "name", "flag", "size") for i in range(4)
    ]
    key_pool += [f"{g}.block{b}.{p}" for g in groups[:4] for b in range(6) for p in ("width", "drop", "act")]
    roots = max(1, domains // 50)
    lines = ["workspace:", "  ckpts_folder: ckpts", ""]
    while len(names) < domains:
        if len(names) < roots:
            name = f"exp{len(names)}"
        else:
            # pick a parent that still has room below it; favour recent ones to reach depth
            for _ in range(100):
                parent = names[-1 - min(len(names) - 1, int(rng.expovariate(1 / 20)))]
                if depth[parent] < max_depth:
                    break
            else:
                parent = names[rng.randrange(roots)]
            n = children.get(parent, 0)
            children[parent] = n + 1
            name = f"{parent}/v{n}"
        names.append(name)
        depth[name] = name.count("/") + 1
        lines.append(f"{name}:")
        for key in rng.sample(key_pool, keys):
            kind = rng.randrange(5)
            if kind == 0:
                value = str(rng.randrange(1, 4096))
            elif kind == 1:
                # always with a '.', so YAML 1.1 (PyYAML) and OmegaConf both read a float
                value = (
                    f"{rng.random() * 10 ** rng.randrange(-5, 2):.3e}"
                    if rng.random() < 0.5
                    else f"{rng.random():.4f}"
                )
            elif kind == 2:
                value = rng.choice(["relu", "gelu", "adamw", "sgd", "cosine", "linear", "'a b'"])
            elif kind == 3:
                value = rng.choice(["true", "false", "null"])
            else:
                value = "[" + ", ".join(str(rng.randrange(100)) for _ in range(3)) + "]"
            lines.append(f"  {key}: {value}")
    return "\n".join(lines) + "\n", names


def reference_merge(data: dict[str, Any], name: str) -> dict[str, Any]:
    """The merged keys of ``name`` computed independently of the package (oldest ancestor first)."""
    chain = []
    cur: str | None = name
    while cur is not None:
        if cur in data:
            chain.append(cur)
        cut = cur.rfind("/")
        cur = cur[:cut] if cut > 0 else None
    merged: dict[str, Any] = {}
    for domain in reversed(chain):
        merged.update(data[domain] or {})
    return merged


def deepest(names: Sequence[str]) -> str:
    return max(names, key=lambda n: (n.count("/"), n))


# --------------------------------------------------------------------------- availability


def module_file(module: str) -> Path:
    """Where the package's submodule ``module`` would live (without importing it)."""
    return REPO / "sucrose_lightning" / f"{module}.py"


# --------------------------------------------------------------------------- machine


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ram_gib() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 2**20:.1f} GiB"
    except OSError:
        pass
    return "unknown"


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def _git_head() -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        head = out.stdout.strip() or "unknown"
        return head + (" (with uncommitted changes)" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def machine() -> dict[str, str]:
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        affinity = os.cpu_count() or 0
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    return {
        "date": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "cpu": _cpu_model(),
        "cores": f"{os.cpu_count()} ({affinity} usable)",
        "ram": _ram_gib(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "torch": _version("torch"),
        "lightning": _version("lightning"),
        "pyyaml": _version("pyyaml"),
        "omegaconf": _version("omegaconf"),
        "sucrose-lightning": f"{_version('sucrose-lightning')} (git {_git_head()})",
        "load average at start": load,
    }
