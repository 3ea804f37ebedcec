"""``sucrose scalars`` and ``sucrose plot``: one TensorBoard scalar of several scenarios.

Both take patterns (``base/lr/*``, see :mod:`.patterns`) and ``--smooth W`` (TensorBoard's
debiased exponential moving average: the values printed or drawn are the smoothed ones);
``plot --logy`` draws a logarithmic y axis.

tensorboard is imported only when logs are read, matplotlib only when a plot is drawn; a
missing matplotlib gives :data:`PLOT_INSTALL_HINT`, not a traceback.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import Config
from ..errors import did_you_mean
from ..layout import Layout
from .common import PROG, UsageError, error_line
from .render import Output, rel, table, to_json

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

    from ..tbreader import ScalarPoint

__all__ = [
    "PLOT_INSTALL_HINT",
    "PlotResult",
    "ScalarsReport",
    "plot_available",
    "plot_figure",
    "render_plot",
    "render_scalars",
    "render_tags",
    "scalars_report",
    "smooth_points",
    "write_plot",
]

#: What ``sucrose plot`` says when matplotlib is not installed.
PLOT_INSTALL_HINT = (
    "sucrose plot needs matplotlib, which is not installed; "
    "install it with: pip install 'sucrose-lightning[plot]'"
)


@dataclass
class ScalarsReport:
    """The scalars read from the logs of some scenarios.

    Attributes:
        tag: the scalar asked for, or ``None`` when every tag was read (``--list-tags``).
        series: scenario -> tag -> its points, in the order the scenarios were named.
        logs_dirs: scenario -> its logs folder.
        known: for each scenario without :attr:`tag`, the tags it does have.
    """

    tag: str | None
    series: dict[str, dict[str, list[ScalarPoint]]]
    logs_dirs: dict[str, Path] = field(default_factory=dict)
    known: dict[str, list[str]] = field(default_factory=dict)

    @property
    def have(self) -> list[str]:
        """The scenarios that logged :attr:`tag`."""
        return [n for n, series in self.series.items() if self.tag is not None and series.get(self.tag)]

    def points(self, name: str) -> list[ScalarPoint]:
        """The points of :attr:`tag` of scenario ``name``."""
        assert self.tag is not None
        return self.series[name].get(self.tag, [])


def smooth_points(points: Sequence[ScalarPoint], weight: float) -> list[ScalarPoint]:
    """TensorBoard's smoothing: a debiased exponential moving average with ``weight`` in [0, 1).

    Examples:
        >>> from sucrose_lightning.tbreader import ScalarPoint
        >>> pts = [ScalarPoint(i, 0.0, v) for i, v in enumerate([1.0, 0.0, 0.0])]
        >>> [round(p.value, 4) for p in smooth_points(pts, 0.5)]
        [1.0, 0.3333, 0.1429]
    """
    from ..tbreader import ScalarPoint

    if weight <= 0:
        return list(points)
    out, last = [], 0.0
    for n, p in enumerate(points, 1):
        last = last * weight + (1 - weight) * p.value
        out.append(ScalarPoint(p.step, p.wall_time, last / (1 - weight**n)))
    return out


def scalars_report(
    ws: Path, cfg: Config, names: Sequence[str], tag: str | None, smooth: float = 0.0
) -> ScalarsReport:
    """Read scalar ``tag`` (every tag when ``None``) of each scenario in ``names``.

    ``smooth`` > 0 replaces each series by its moving average (see :func:`smooth_points`).

    Raises:
        UsageError: tensorboard, which reads the logs, is missing.
    """
    try:
        from ..tbreader import read_scalars
    except ImportError as err:  # pragma: no cover - tensorboard is a dependency
        raise UsageError(f"reading logs needs tensorboard: pip install tensorboard ({err})") from None
    report = ScalarsReport(tag, {})
    for name in names:
        logs_dir = Layout(ws, name, cfg.settings).logs_dir
        report.logs_dirs[name] = logs_dir
        series = read_scalars(logs_dir, None if tag is None else [tag])
        report.series[name] = {t: smooth_points(p, smooth) for t, p in series.items()}
    if tag is not None:
        for name, series in report.series.items():
            if not series.get(tag):
                report.known[name] = list(read_scalars(report.logs_dirs[name]))
    return report


def _no_scalars(report: ScalarsReport, name: str) -> str:
    return f"{PROG}: scenario {name!r} has no scalars in {rel(report.logs_dirs[name])}"


def render_tags(report: ScalarsReport, fmt: str) -> Output:
    """``--list-tags``: each tag's point count per scenario, as a table or JSON (``fmt="json"``)."""
    out = Output()
    data = report.series
    if fmt == "json":
        out.out(to_json({name: {t: len(p) for t, p in series.items()} for name, series in data.items()}))
        return out
    for name, series in data.items():
        if not series:
            out.err(_no_scalars(report, name))
    tags = sorted({t for series in data.values() for t in series})
    if not tags:
        out.code = 1
        return out
    rows = [[t, *(str(len(data[n].get(t, []))) for n in data)] for t in tags]
    out.out(table(["TAG", *data], rows, right=range(1, len(data) + 1)))
    return out


def _missing(report: ScalarsReport, out: Output) -> None:
    """Warn about each scenario without the tag (closest tag names suggested)."""
    tag = report.tag
    assert tag is not None
    for name in report.series:
        if name not in report.known:
            continue
        known = report.known[name]
        if not known:
            out.err(_no_scalars(report, name))
        else:
            out.err(
                f"{PROG}: scenario {name!r} has no scalar {tag!r}{did_you_mean(tag, known)} "
                f"('--list-tags' shows its {len(known)} tags)"
            )


def render_scalars(report: ScalarsReport, fmt: str = "csv") -> Output:
    """The scalar as CSV (``fmt="csv"``) or JSON (``"json"``); exit code 1 when no scenario has it."""
    out = Output()
    _missing(report, out)
    have = report.have
    out.code = 0 if have else 1
    if fmt == "json":
        series = {
            n: [{"step": p.step, "wall_time": p.wall_time, "value": p.value} for p in report.points(n)]
            for n in have
        }
        out.out(to_json({"tag": report.tag, "series": series}))
        return out
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["scenario", "step", "wall_time", "value"])
    for n in have:
        for p in report.points(n):
            writer.writerow([n, p.step, f"{p.wall_time:.3f}", repr(p.value)])
    out.out(buffer.getvalue(), end="")
    return out


def plot_available() -> bool:
    """Whether matplotlib can be imported (``sucrose plot`` needs it)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def plot_figure(series: dict[str, Sequence[ScalarPoint]], tag: str, logy: bool = False) -> Figure:
    """One matplotlib figure: ``tag`` against step, one labelled line per scenario.

    Uses ``matplotlib.figure.Figure`` directly (no pyplot, no GUI backend, no global state).

    Args:
        series: scenario name -> its points, in the order the lines are drawn.
        tag: the scalar's tag (the y label and title).
        logy: a logarithmic y axis.

    Returns:
        The figure; ``fig.axes[0].get_lines()`` has one line per scenario.

    Raises:
        ImportError: matplotlib is not installed.

    Examples:
        >>> from sucrose_lightning.tbreader import ScalarPoint
        >>> fig = plot_figure({"base": [ScalarPoint(0, 0.0, 1.0), ScalarPoint(1, 1.0, 0.5)]}, "loss")
        >>> [line.get_label() for line in fig.axes[0].get_lines()]
        ['base']
    """
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(8, 4.5), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    for name, points in series.items():
        marker = "o" if len(points) < 30 else None
        ax.plot([p.step for p in points], [p.value for p in points], label=name, marker=marker, markersize=3)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel(tag)
    ax.set_title(tag)
    ax.grid(True, alpha=0.3)
    ax.legend()
    return fig


def _default_png(tag: str) -> str:
    """``train/loss`` -> ``train_loss.png``; a tag with nothing usable gives ``plot.png``.

    Examples:
        >>> _default_png("train/loss"), _default_png("!!!")
        ('train_loss.png', 'plot.png')
    """
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", tag).strip("_.")
    return f"{stem}.png" if stem else "plot.png"


@dataclass
class PlotResult:
    """What ``sucrose plot`` did.

    Attributes:
        report: the scalars drawn.
        output: the PNG file.
        error: why it could not be written, or ``None``.
    """

    report: ScalarsReport
    output: Path
    error: str | None = None


def write_plot(report: ScalarsReport, output: str | Path | None = None, logy: bool = False) -> PlotResult:
    """Draw the scenarios that have the tag into one PNG (default: ``<tag>.png``); nothing if none has it."""
    assert report.tag is not None
    result = PlotResult(report, Path(output or _default_png(report.tag)))
    have = report.have
    if not have:
        return result
    fig = plot_figure({n: report.points(n) for n in have}, report.tag, logy)
    try:
        fig.savefig(result.output, format="png")
    except OSError as err:
        result.error = f"cannot write {result.output}: {err.strerror or err}"
    return result


def render_plot(result: PlotResult, fmt: str = "text") -> Output:
    """Warnings, then what was written (text or JSON); exit 1 with nothing to plot, 2 if unwritable."""
    report, tag = result.report, result.report.tag
    out = Output()
    _missing(report, out)
    have = report.have
    if not have:
        out.err(f"{PROG}: nothing to plot: no scenario has the scalar {tag!r}")
        out.code = 1
        return out
    if result.error is not None:
        out.err(error_line(result.error))
        out.code = 2
        return out
    lines: list[dict[str, Any]] = [{"scenario": n, "points": len(report.points(n))} for n in have]
    if fmt == "json":
        out.out(to_json({"output": str(result.output.absolute()), "tag": tag, "lines": lines}))
    else:
        counts = ", ".join(f"{line['scenario']} {line['points']} points" for line in lines)
        out.out(f"wrote {rel(result.output)} ({tag}: {counts})")
    return out
