"""Errors that carry a message fit to show a user as is (no traceback)."""


class NewsbotError(Exception):
    """Base for errors a user can act on."""


class StoreError(NewsbotError):
    """The store cannot be opened or written."""


class QuestionError(NewsbotError):
    """The question cannot be asked as given (empty, too long)."""


class BusyError(NewsbotError):
    """Another ingest holds the store."""
