"""The revenue model's module (`sandboxes.anaplan.data`): what an import task loads into its cells and what
the forecast export writes from them, as the module overview in `sandboxes.anaplan.app` describes.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from sandboxes.anaplan.data import (
    IMPORT_COLUMNS,
    MODULE_NAME,
    VERSIONS,
    Cell,
    CellKey,
    ExportSpec,
    ImportSpec,
)

if TYPE_CHECKING:
    from sandboxes.anaplan.tenant import AnaplanSandboxSettings, _Model, _Task

__all__ = ["RevenueModule"]


_MONTH = re.compile(r"^[0-9]{4}-(0[1-9]|1[0-2])$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")
_PLAIN_DECIMAL = re.compile(r"^-?[0-9]+(\.[0-9]+)?$")
_MAX_PROJECT_CODE = 60


@dataclass(slots=True)
class _Row:
    line: int
    values: list[str]
    project: str = ""
    month: str = ""
    currency: str = ""
    version: str = ""
    amount: str = ""
    reference: str | None = None


class RevenueModule:
    """The cells of the revenue module and the work of the tasks that read and write them."""

    settings: AnaplanSandboxSettings
    cells: dict[CellKey, Cell]

    def _import(self, spec: ImportSpec, task: _Task) -> tuple[dict[str, Any], bytes | None]:
        def failed(message: str) -> tuple[dict[str, Any], None]:
            detail = {"localMessageText": message, "occurrences": 1, "type": "importFailed", "values": []}
            return {
                "details": [detail],
                "failureDumpAvailable": False,
                "objectId": spec.id,
                "successful": False,
            }, None

        if task.payload_problem is not None or task.payload is None:
            return failed(task.payload_problem or "The import has no data source.")
        try:
            text = task.payload.decode("utf-8-sig")
        except UnicodeDecodeError:
            return failed("The file is not encoded as UTF-8.")
        reader = csv.reader(io.StringIO(text, newline=""))
        columns = [name.strip().lower() for name in next(reader, [])]
        missing = [column for column in IMPORT_COLUMNS if column not in columns]
        if missing:
            return failed(f"The file has no column {', '.join(repr(name) for name in missing)}.")
        position = {name: columns.index(name) for name in (*IMPORT_COLUMNS, "reference") if name in columns}
        rows: list[_Row] = []
        for line, values in enumerate(reader, start=2):
            if not any(value.strip() for value in values):
                continue
            padded = values + [""] * (len(columns) - len(values))
            row = _Row(line=line, values=values)
            row.project = padded[position["project"]].strip()
            row.month = padded[position["month"]].strip()
            row.currency = padded[position["currency"]].strip()
            row.version = padded[position["version"]].strip().lower()
            row.amount = padded[position["amount"]].strip()
            if "reference" in position:
                row.reference = padded[position["reference"]].strip() or None
            rows.append(row)
        return self._load(spec, columns, rows)

    def _row_error(self, row: _Row) -> str | None:
        if not row.project or len(row.project) > _MAX_PROJECT_CODE or not row.project.isprintable():
            return f"Invalid project code: {row.project!r}"
        if not _MONTH.fullmatch(row.month):
            return f"Invalid time period: {row.month!r}"
        if not self.settings.timescale_start <= row.month <= self.settings.timescale_end:
            return f"Time period {row.month} is outside the model's timescale"
        if row.version not in VERSIONS:
            return f"Invalid version: {row.version!r}"
        if not _CURRENCY.fullmatch(row.currency):
            return f"Invalid currency: {row.currency!r}"
        if not _PLAIN_DECIMAL.fullmatch(row.amount):
            return f"Invalid number: {row.amount!r}"
        try:
            Decimal(row.amount)
        except InvalidOperation:
            return f"Invalid number: {row.amount!r}"
        return None

    def _load(
        self, spec: ImportSpec, header: list[str], rows: list[_Row]
    ) -> tuple[dict[str, Any], bytes | None]:
        ignored = [row for row in rows if not row.amount]
        candidates = [row for row in rows if row.amount]
        failures: list[tuple[_Row, str]] = []
        valid: list[_Row] = []
        for row in candidates:
            error = self._row_error(row)
            if error is None:
                valid.append(row)
            else:
                failures.append((row, error))
        in_file = {(row.project, row.version) for row in valid}
        # A project has one currency: that of its cells of the versions this file leaves alone, else of its
        # first valid row in the file.
        currencies: dict[str, str] = {}
        for (project, version, _), cell in self.cells.items():
            if (project, version) not in in_file:
                currencies.setdefault(project, cell.currency)
        loaded: list[_Row] = []
        for row in valid:
            expected = currencies.setdefault(row.project, row.currency)
            if row.currency != expected:
                failures.append(
                    (row, f"Currency {row.currency} does not match the project's currency {expected}")
                )
            else:
                loaded.append(row)
        created = updated = 0
        before = set(self.cells)
        # As in Anaplan, an import writes the cells its rows name and no others: a month the file leaves out
        # keeps its figure. A number cell that is zero is an empty cell, so the store keeps no zero cells.
        for row in loaded:
            key = (row.project, row.version, row.month)
            if key in before:
                updated += 1
            else:
                created += 1
            if Decimal(row.amount) == 0:
                self.cells.pop(key, None)
            else:
                self.cells[key] = Cell(row.currency, row.amount, row.reference)
        successful = len(loaded)
        failed = len(failures)
        total = len(rows)
        summary = {
            "localMessageText": f"{MODULE_NAME}: {successful} ({created}/{updated}) rows successful, "
            f"{len(ignored)} ignored",
            "occurrences": 0,
            "type": "moduleRowsProcessed",
            "values": [
                "moduleName", MODULE_NAME,
                "successRowCount", str(successful),
                "successCreateCount", str(created),
                "successUpdateCount", str(updated),
                "failedCount", str(failed),
                "ignoredCount", str(len(ignored)),
                "totalRowCount", str(total),
            ],
        }  # fmt: skip
        dump: bytes | None = None
        if failures:
            out = io.StringIO()
            writer = csv.writer(out, lineterminator="\n")
            writer.writerow(["_Line_", *header, "_Error_1_"])
            for row, error in sorted(failures, key=lambda item: item[0].line):
                writer.writerow([row.line, *row.values, error])
            dump = out.getvalue().encode()
        result = {
            "details": [summary],
            "failureDumpAvailable": dump is not None,
            "objectId": spec.id,
            "successful": not failures,
        }
        return result, dump

    def forecast_rows(self) -> list[dict[str, str]]:
        """The forecast per project and month: the actual where there is one, else the baseline."""
        rows: list[dict[str, str]] = []
        projects = sorted({key[0] for key in self.cells})
        for project in projects:
            months = sorted({key[2] for key in self.cells if key[0] == project})
            for month in months:
                actual = self.cells.get((project, "actual", month))
                cell = actual or self.cells[(project, "baseline", month)]
                rows.append(
                    {
                        "project": project,
                        "month": month,
                        "currency": cell.currency,
                        "amount": cell.amount,
                        "source": "actual" if actual is not None else "baseline",
                    }
                )
        return rows

    def _export(self, model: _Model, spec: ExportSpec) -> dict[str, Any]:
        out = io.StringIO()
        writer = csv.DictWriter(
            out, fieldnames=[column.header for column in spec.columns], lineterminator="\n"
        )
        writer.writeheader()
        rows = self.forecast_rows()
        writer.writerows(rows)
        content = out.getvalue().encode()
        size = max(1, self.settings.export_chunk_bytes)
        output = model.files[spec.id]
        output.chunks = {
            index: content[start : start + size] for index, start in enumerate(range(0, len(content), size))
        }
        output.chunk_count = len(output.chunks)
        output.completed = True
        detail = {
            "localMessageText": f"{spec.name}: {len(rows)} rows exported",
            "occurrences": 0,
            "type": "exportSucceeded",
            "values": ["exportName", spec.name, "rowCount", str(len(rows))],
        }
        return {"details": [detail], "failureDumpAvailable": False, "objectId": spec.id, "successful": True}
