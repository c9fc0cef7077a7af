"""Printing: a rich table for people, `--json` for scripts."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

console = Console()


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    return value


def emit_json(data: Any) -> None:
    typer.echo(json.dumps(data, default=_plain, indent=2, sort_keys=True))


def emit_table(rows: Sequence[dict[str, Any]], columns: Sequence[str], title: str | None = None) -> None:
    table = Table(title=title)
    for col in columns:
        table.add_column(col)
    for row in rows:
        table.add_row(*("" if row.get(c) is None else str(_plain(row.get(c))) for c in columns))
    console.print(table)


def emit(data: Any, as_json: bool, columns: Sequence[str] | None = None, title: str | None = None) -> None:
    """`data` as JSON, or as a table (a list of rows, or one row shown as field/value pairs)."""
    if as_json:
        emit_json(data)
    elif isinstance(data, list):
        emit_table(data, columns or (sorted(data[0]) if data else []), title)
    else:
        emit_table([{"field": k, "value": v} for k, v in data.items()], ("field", "value"), title)
