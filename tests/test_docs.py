"""The docs cannot lie: their examples run, their shown output is real, the API page is complete.

* A ```python block right after ``<!-- example: run -->`` in ``docs/*.md`` or ``README.md`` is a
  complete example: it runs as a script in a fresh temporary folder (its workspace), holding as
  ``config.yaml`` the page's nearest earlier block marked ``<!-- example: config.yaml -->``.
* Every ``<!-- cli: output -->`` block must be what ``docs/gen_cli_output.py`` produces from a
  real workspace; ``python docs/gen_cli_output.py`` regenerates them.
* The API reference documents every name of ``sucrose_lightning.__all__``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

import sucrose_lightning

ROOT = Path(__file__).resolve().parent.parent
PAGES = [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]
MARK = re.compile(
    r"^<!-- example: (?P<what>[\w.-]+) -->\n(?P<fence>```(?P<lang>\w*)\n(?P<body>.*?)```\n)?", re.M | re.S
)
API_EXTRA = ("lightning.SucroseCheckpoint", "loggers.SucroseLogger", "store.CheckpointStore")


@dataclass(frozen=True)
class Example:
    page: Path
    line: int
    code: str
    config: str | None

    def __str__(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def collect(page: Path) -> list[Example]:
    """The page's runnable examples; a marker that is not followed by its kind of block is an error."""
    text = page.read_text()
    found, config = [], None
    for m in MARK.finditer(text):
        line = text.count("\n", 0, m.start()) + 1
        where = f"{page.relative_to(ROOT)}:{line}"
        want = {"run": "python", "config.yaml": "yaml"}.get(m["what"])
        if want is None:
            raise AssertionError(f"{where}: unknown marker 'example: {m['what']}' (use run or config.yaml)")
        if m["fence"] is None or m["lang"] != want:
            raise AssertionError(
                f"{where}: '<!-- example: {m['what']} -->' must be followed by a ```{want} block"
            )
        if m["what"] == "config.yaml":
            config = m["body"]
        else:
            found.append(Example(page, line + 2, m["body"], config))
    return found


EXAMPLES = [example for page in PAGES for example in collect(page)]


def test_every_guide_page_has_a_runnable_example() -> None:
    pages = {example.page.name for example in EXAMPLES}
    for name in ("README.md", "index.md", "config.md", "plain-loop.md", "lightning.md", "crash-safety.md"):
        assert name in pages, f"{name} has no '<!-- example: run -->' block"


@pytest.mark.parametrize("example", EXAMPLES, ids=str)
def test_example_runs(example: Example, tmp_path: Path) -> None:
    if example.config is not None:
        (tmp_path / "config.yaml").write_text(example.config)
    script = tmp_path / "example.py"
    # blank lines first, so a traceback's line numbers are the page's
    script.write_text("\n" * (example.line - 1) + example.code)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, f"the example at {example} failed:\n{proc.stdout}\n{proc.stderr}"


def test_shown_cli_output_is_current() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "docs/gen_cli_output.py"), "--check"],
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_api_reference_lists_every_public_name() -> None:
    text = (ROOT / "docs/api.md").read_text()
    entries = set(re.findall(r"^::: sucrose_lightning\.([\w.]+)$", text, re.M))
    # a public name counts whether it is shown from the package or from its module
    shown = entries | {entry.rsplit(".", 1)[-1] for entry in entries}
    # the function scenario() is shadowed by the module scenario.py for griffe; docs/griffe_sucrose.py
    # keeps it as scenario_function
    shown |= {"scenario"} if "scenario_function" in shown else set()
    missing = [n for n in (*sucrose_lightning.__all__, *API_EXTRA) if n not in shown]
    assert not missing, f"docs/api.md has no '::: sucrose_lightning.<name>' entry for {missing}"


def test_docstring_roles_become_code_and_a_dangling_one_is_reported(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    griffe = pytest.importorskip("griffe")
    sys.path.insert(0, str(ROOT / "docs"))
    try:
        import griffe_sucrose
    finally:
        sys.path.remove(str(ROOT / "docs"))
    pkg = tmp_path / "sucrose_lightning"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(
        'def good():\n    """See :func:`bad_name` and :class:`~sucrose_lightning.Thing`."""\n\n'
        'class Thing:\n    """A thing; :meth:`good` is elsewhere, :exc:`KeyError` is built in."""\n'
    )
    with caplog.at_level("WARNING", logger="mkdocs.plugins.sucrose_docs"):
        loaded = griffe.load(pkg, extensions=griffe.load_extensions(griffe_sucrose.SphinxRoles))
    assert loaded["good"].docstring.value == "See `bad_name` and `Thing`."
    assert loaded["Thing"].docstring.value == "A thing; `good` is elsewhere, `KeyError` is built in."
    assert [r.getMessage().split(": ", 1)[1] for r in caplog.records] == [
        "docstring of sucrose_lightning.good refers to :func:`bad_name`, which names nothing"
    ]
