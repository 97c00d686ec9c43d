"""The results: a row per figure, the table `make bench` prints, and bench/results/latest.md
with the table and every detail line."""

from __future__ import annotations

import contextlib
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.stats import Summary

RESULTS = Path(__file__).resolve().parent / "results"
# The table's order; B4 is measured with B3.
FIGURES = ("B1", "B2", "B3", "B4", "B5", "B6", "B7", "B9", "R1")


@dataclass
class Row:
    figure: str
    target: str
    measured: str
    reference: str = "—"
    ratio: str = "—"
    verdict: str = "not measured"


def timeline(result: dict[str, Any]) -> str:
    """The slowest request of each second of a load (by send time): a few stalls or a queue."""
    return ", ".join(
        f"{second}s {slowest:.0f} ms" for second, (_, slowest) in result.get("timeline", {}).items()
    )


def ratio(value: float) -> str:
    return f"{value:.2f}" if math.isfinite(value) else "—"


def verdict(ok: bool) -> str:
    return "pass" if ok else "FAIL"


def against_pgbench(
    figure: str,
    target: str,
    hallq: Summary,
    reference: Summary,
    *,
    at_least: float,
    also: str = "",
    ok: bool = True,
) -> Row:
    """A row of hallq's rate against pgbench's (`also` after hallq's figures): it passes at
    `at_least` of pgbench's rate, with no errors and `ok`."""
    share = hallq.rate / reference.rate if reference.rate else math.nan
    return Row(
        figure,
        target,
        f"{hallq.rate:.0f}/s, p50 {hallq.p50_ms:.1f} ms, p99 {hallq.p99_ms:.1f} ms"
        + also
        + errors(hallq),
        f"pgbench {reference.rate:.0f}/s, p99 {reference.p99_ms:.1f} ms",
        ratio(share),
        verdict(share >= at_least and hallq.errors == 0 and ok),
    )


def beside_core(hallq: Summary, core: Summary) -> tuple[float, str]:
    """hallq's share of pgbench `core` (hallq's essential statements only), and its text for
    the measured column: printed beside the target's `full` ratio."""
    share = hallq.rate / core.rate if core.rate else math.nan
    return share, f"; {share:.0%} of pgbench core ({core.rate:.0f}/s)"


def errors(summary: Summary) -> str:
    """`, 3 errors` after a measured figure, or nothing."""
    return f", {summary.errors} errors" if summary.errors else ""


def table(rows: dict[str, list[Row]]) -> str:
    header = "| figure | target | measured | reference | ratio | result |"
    lines = [header, "|---|---|---|---|---|---|"]
    for key in FIGURES:
        for r in rows.get(key, []):
            lines.append(
                f"| {r.figure} | {r.target} | {r.measured} | {r.reference} | {r.ratio} "
                f"| {r.verdict} |"
            )
    return "\n".join(lines)


def machine() -> str:
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GB, Python {sys.version.split()[0]}"


def write_latest(header: str, table_text: str, details: list[str]) -> Path:
    """bench/results/latest.md: the header, the table and the details."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "latest.md"
    path.write_text(
        f"# {header}\n\n{table_text}\n\n## Details\n\n```\n" + "\n".join(details) + "\n```\n"
    )
    return path
