"""The one base of every error a user can fix, and the first line of a database error.

Every project error derives from `InteropError`; the CLI turns exactly these into one `error:` line and their
exit code, and treats anything else as a bug."""

from __future__ import annotations


class InteropError(Exception):
    """A problem the user can fix (bad file, option, setting, missing data): one line, exit code `exit_code`;
    `hint` is an optional second line saying what it means (e.g. what stays done)."""

    exit_code: int = 2

    def __init__(self, message: str = "", *, exit_code: int | None = None, hint: str | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code
        self.hint = hint

    @property
    def message(self) -> str:
        """The line shown to the user (without the `error:` prefix)."""
        return str(self)


def first_line(exc: BaseException, limit: int = 500) -> str:
    """The first line of an error, preferring a database driver's own message (`exc.orig`); its type when empty."""
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0][:limit] if text else type(exc).__name__


class ExportError(InteropError):
    """An export file cannot be read or written as asked: a Qualtrics export that is not usable (the message names
    the file, row and field), or a data export (unknown table or format, a column changing type)."""
