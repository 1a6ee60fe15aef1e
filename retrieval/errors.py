"""Errors that carry a message fit to show a user as is (no traceback)."""


def first_line(e: BaseException) -> str:
    """An exception as one line for a user: its message's first line, or its type's name."""
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


class NewsbotError(Exception):
    """Base for errors a user can act on."""


class StoreError(NewsbotError):
    """The store cannot be opened or written."""


class QuestionError(NewsbotError):
    """The question cannot be asked as given (empty, too long)."""


class BusyError(NewsbotError):
    """Another ingest holds the store."""
