"""Errors that the CLI turns into one clear message and a non-zero exit code (never a traceback)."""

from __future__ import annotations


class QAnchorError(Exception):
    """Base class for errors caused by input or configuration, not by a bug."""


class ContractError(QAnchorError):
    """A dataset breaks the input contract (DESIGN.md section 3).

    The message names the file, the column and a few example rows so the owner of the data
    can find and fix the problem without reading our code.
    """

    def __init__(self, file: str, message: str, column: str | None = None, rows: str = "") -> None:
        self.file, self.column, self.rows = file, column, rows
        where = f"{file}" + (f", column '{column}'" if column else "")
        text = f"{where}: {message}"
        if rows:
            text += f"\n  example rows:\n{rows}"
        super().__init__(text)
        self._fields = (file, message, column, rows)

    def __reduce__(self) -> tuple:
        # Raised in a spawned stage process, it is pickled to the parent, which rebuilds it from
        # the constructor's arguments (the default would pass the finished text as ``file``).
        return type(self), self._fields
