"""The reports as files: CSV (UTF-8 with a byte-order mark, so that spreadsheet programs read
the Chinese names right) and xlsx (a workbook with one sheet per table, numbers as numbers and
dates as dates, headers in Chinese and English).

A report is a few tables (`Table`): the daily report one (a row per business type, counter and
clerk, `scope` telling which), the period report two (that table, and its days), the branches
report one. CSV has room for one table: a period's CSV is its rows table with `from` and `to`
columns; its days are in the xlsx (and the JSON).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from openpyxl import Workbook
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter

from app.reports.schemas import BranchesReport, DailyReport, PeriodReport

# Every column any table has: its header in Chinese and English.
HEADERS: dict[str, str] = {
    "date": "日期",
    "from": "起始日期",
    "to": "截止日期",
    "scope": "类别",
    "code": "代码",
    "branch": "营业厅",
    "name": "名称",
    "timezone": "时区",
    "issued": "取号数",
    "called": "叫号数",
    "served": "办结数",
    "no_show": "过号数",
    "cancelled": "取消数",
    "transferred": "转移数",
    "expired": "过期数",
    "abandoned_pct": "弃号率%",
    "avg_wait_s": "平均等候(秒)",
    "p90_wait_s": "90%等候(秒)",
    "avg_service_s": "平均办理(秒)",
    "within_target_pct": "达标率%",
    "rating_avg": "平均评分",
    "ratings": "评价数",
    "satisfaction_pct": "满意率%",
    "utilisation": "窗口利用率",
    "open_s": "开窗时长(秒)",
    "serving_s": "服务时长(秒)",
    "signed_in_s": "签到时长(秒)",
    "paused_s": "暂停时长(秒)",
    "served_per_hour": "每小时办结",
    "estimate_mae_s": "预计等候误差(秒)",
    "estimate_bias_s": "预计等候偏差(秒)",
    "estimate_in_range_pct": "落在预计区间%",
}
# The estimate's accuracy (SPEC §11): business types' rows and the branches' totals.
ESTIMATE_COLUMNS: Sequence[str] = ("estimate_mae_s", "estimate_bias_s", "estimate_in_range_pct")

FIGURE_COLUMNS: Sequence[str] = (
    "issued",
    "called",
    "served",
    "no_show",
    "cancelled",
    "transferred",
    "expired",
    "abandoned_pct",
    "avg_wait_s",
    "p90_wait_s",
    "avg_service_s",
    "within_target_pct",
    "rating_avg",
    "ratings",
    "utilisation",
    "open_s",
    "serving_s",
    # added with the period report (issue 22): after the first columns, which stay as they were
    "satisfaction_pct",
    "signed_in_s",
    "paused_s",
    "served_per_hour",
    # added with the estimate's accuracy (issue 23); empty for counters and clerks
    *ESTIMATE_COLUMNS,
)
# The daily report's CSV columns (docs/reports.md); the period's have `from` and `to` first.
DAILY_COLUMNS: Sequence[str] = ("date", "scope", "code", "name", *FIGURE_COLUMNS)
PERIOD_COLUMNS: Sequence[str] = ("from", "to", "scope", "code", "name", *FIGURE_COLUMNS)
DAY_COLUMNS: Sequence[str] = (
    "date",
    "issued",
    "served",
    "avg_wait_s",
    "within_target_pct",
    "abandoned_pct",
)
BRANCH_COLUMNS: Sequence[str] = (
    "from",
    "to",
    "branch",
    "name",
    "timezone",
    "issued",
    "served",
    "avg_wait_s",
    "p90_wait_s",
    "within_target_pct",
    "abandoned_pct",
    "rating_avg",
    "satisfaction_pct",
    *ESTIMATE_COLUMNS,
)


@dataclass(frozen=True)
class Table:
    sheet: str  # the xlsx sheet's name
    columns: Sequence[str]
    rows: list[dict[str, Any]]


def _scoped(report: DailyReport | PeriodReport, **extra: Any) -> list[dict[str, Any]]:
    """A row per business type, counter and clerk, `scope` and `code` saying which."""
    scoped: list[dict[str, Any]] = [
        *({"scope": "service", "code": r.service, **r.model_dump()} for r in report.services),
        *({"scope": "counter", "code": r.counter, **r.model_dump()} for r in report.counters),
        *({"scope": "staff", "code": r.staff, **r.model_dump()} for r in report.staff),
    ]
    for row in scoped:
        row.update(extra)
    return scoped


def daily_tables(report: DailyReport) -> list[Table]:
    return [Table("报表 Report", DAILY_COLUMNS, _scoped(report, date=report.date))]


def period_tables(report: PeriodReport) -> list[Table]:
    span = {"from": report.from_, "to": report.to}
    return [
        Table("汇总 Summary", PERIOD_COLUMNS, _scoped(report, **span)),
        Table("每日 Days", DAY_COLUMNS, [day.model_dump() for day in report.days]),
    ]


def branches_tables(report: BranchesReport) -> list[Table]:
    span = {"from": report.from_, "to": report.to}
    return [
        Table(
            "营业厅 Branches", BRANCH_COLUMNS, [{**r.model_dump(), **span} for r in report.branches]
        )
    ]


# -- CSV ----------------------------------------------------------------------------------------

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, int | float):
        return str(value)  # a figure, negative ones too (estimate_bias_s), stays a number
    cell = str(value)
    # A name starting like a formula would run as one in a spreadsheet: make it text.
    return "'" + cell if cell.startswith(_FORMULA_START) else cell


def to_csv(table: Table) -> str:
    """One table, its header the column names (as in the JSON); an empty cell is null or not
    applicable. UTF-8 with a byte-order mark."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(table.columns)
    for row in table.rows:
        writer.writerow([_cell(row.get(column)) for column in table.columns])
    return "\ufeff" + out.getvalue()


# -- xlsx ---------------------------------------------------------------------------------------

XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
# Control characters XML 1.0 (the inside of an xlsx) cannot hold: a name may have them (names
# are free text), a workbook may not.
_NOT_IN_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


def _xlsx_value(value: object) -> object:
    """Numbers and dates as themselves (typed cells); text guarded like the CSV's."""
    if value is None or isinstance(value, int | float | date):
        return value
    text = _NOT_IN_XML.sub("\ufffd", str(value))
    return "'" + text if text.startswith(_FORMULA_START) else text


def to_xlsx(tables: Iterable[Table]) -> bytes:
    """A workbook, one sheet per table: a header row of Chinese and English names (中文
    English), then the rows; frozen below the header."""
    workbook = Workbook()
    workbook.remove(workbook.active)  # type: ignore[arg-type]
    bold = Font(bold=True)
    for table in tables:
        sheet = workbook.create_sheet(table.sheet)
        sheet.append([f"{HEADERS[c]} {c}" for c in table.columns])
        for cell in sheet[1]:
            cell.font = bold
        for row in table.rows:
            sheet.append([_xlsx_value(row.get(column)) for column in table.columns])
        for index, column in enumerate(table.columns, start=1):
            letter = get_column_letter(index)
            sheet.column_dimensions[letter].width = max(12, len(HEADERS[column]) * 2 + len(column))
            if column in ("date", "from", "to"):
                for cell in sheet[letter][1:]:
                    cell.number_format = "yyyy-mm-dd"
        sheet.freeze_panes = "A2"
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()
