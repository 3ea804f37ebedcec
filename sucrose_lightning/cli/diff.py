"""``sucrose diff A B``: how the merged configs of two scenarios differ."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..config import Config, plain, same_value
from .render import Output, inline, table, to_json

__all__ = ["DiffReport", "DiffRow", "diff_report", "render_diff"]


@dataclass
class DiffRow:
    """A key both scenarios set, to different values, and the domains the values came from."""

    key: str
    a: Any
    b: Any
    a_origin: str
    b_origin: str


@dataclass
class DiffReport:
    """What ``sucrose diff`` shows.

    Attributes:
        a: the first scenario's name.
        b: the second scenario's name.
        differ: keys set in both, to different values (in ``a``'s order).
        only_a: keys only ``a`` sets -> its values.
        only_b: keys only ``b`` sets -> its values.
        same: how many keys both set to the same value.
        keys_a: how many keys ``a`` has.
    """

    a: str
    b: str
    differ: list[DiffRow]
    only_a: dict[str, Any]
    only_b: dict[str, Any]
    same: int
    keys_a: int

    @property
    def identical(self) -> bool:
        """Whether the two merged configs are the same."""
        return not (self.differ or self.only_a or self.only_b)


def diff_report(cfg: Config, a: str, b: str) -> DiffReport:
    """Compare the merged configs of scenarios ``a`` and ``b``.

    Examples:
        >>> from pathlib import Path
        >>> cfg = Config(Path("config.yaml"), {"base": {"lr": 0.1, "n": 1}, "x": {"lr": 0.2, "m": 3}})
        >>> report = diff_report(cfg, "base", "x")
        >>> report.differ, report.only_a, report.only_b, report.same
        ([DiffRow(key='lr', a=0.1, b=0.2, a_origin='base', b_origin='x')], {'n': 1}, {'m': 3}, 0)
    """
    va, oa = cfg.merged(a)
    vb, ob = cfg.merged(b)
    differ = [DiffRow(k, va[k], vb[k], oa[k], ob[k]) for k in va if k in vb and not same_value(va[k], vb[k])]
    only_a = {k: va[k] for k in va if k not in vb}
    only_b = {k: vb[k] for k in vb if k not in va}
    same = sum(1 for k in va if k in vb) - len(differ)
    return DiffReport(a, b, differ, only_a, only_b, same, len(va))


def render_diff(report: DiffReport, fmt: str = "table") -> Output:
    """The report as a table (``fmt="table"``) or JSON (``"json"``).

    Examples:
        >>> print(render_diff(DiffReport("a", "b", [], {}, {}, 2, 2)).stdout(), end="")
        a and b have the same config (2 keys)
    """
    out = Output()
    a, b = report.a, report.b
    if fmt == "json":
        data = {
            "a": a,
            "b": b,
            "differ": [
                {
                    "key": r.key,
                    "a": plain(r.a),
                    "b": plain(r.b),
                    "a_origin": r.a_origin,
                    "b_origin": r.b_origin,
                }
                for r in report.differ
            ],
            "only_a": {k: plain(v) for k, v in report.only_a.items()},
            "only_b": {k: plain(v) for k, v in report.only_b.items()},
            "same": report.same,
        }
        out.out(to_json(data))
        return out
    if report.identical:
        out.out(f"{a} and {b} have the same config ({report.keys_a} keys)")
        return out
    rows = [[r.key, inline(r.a), inline(r.b)] for r in report.differ]
    rows += [[k, inline(v), "(unset)"] for k, v in report.only_a.items()]
    rows += [[k, "(unset)", inline(v)] for k, v in report.only_b.items()]
    out.out(table(["KEY", a, b], rows))
    out.out(
        f"\n{len(report.differ)} differ, {len(report.only_a)} only in {a}, "
        f"{len(report.only_b)} only in {b}, {report.same} the same"
    )
    return out
