"""The exception hierarchy: one class per variant of the Rust ``timecask::Error``.

Every exception carries the variant's fields as attributes (``table``, ``key``,
``txid``, ``path``, ``offset``, ...); ``fields`` holds them all as a dict.
Keys are ``bytes``, paths ``str``, txids ``int``.
"""

from __future__ import annotations

from typing import Any, Dict


class Error(Exception):
    """Base class of every timecask error."""

    fields: Dict[str, Any]

    def __init__(self, message: str, **fields: Any) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields
        for name, value in fields.items():
            setattr(self, name, value)

    def __repr__(self) -> str:
        extra = "".join(f", {k}={v!r}" for k, v in self.fields.items())
        return f"{type(self).__name__}({self.message!r}{extra})"

    def __reduce__(self):  # picklable, fields included
        return (_rebuild, (type(self), self.message, self.fields))


def _rebuild(cls, message, fields):
    return cls(message, **fields)


class IoError(Error):
    """An operating-system I/O call failed (``path``, ``errno``)."""


class LockedError(Error):
    """Another process (or another open ``Db`` here) holds the database (``path``)."""


class CorruptError(Error):
    """Bytes on disk do not match what was written (``path``, ``offset``, ``reason``)."""


class UnsupportedFormatError(Error):
    """A file of a newer or unknown format version (``path``, ``found``, ``supported``)."""


class NotADatabaseError(Error):
    """The directory holds other files and is not a timecask database (``path``)."""


class NotFoundError(Error):
    """No database at ``path`` (a read-only open, or ``create_if_missing=False``)."""


class FutureTxidError(Error):
    """A txid after the latest committed one (``requested``, ``latest``)."""


class HistoryPurgedError(Error):
    """History below the retention horizon was asked for (``requested``, ``horizon``)."""


class HistoryInUseError(Error):
    """A purge would drop history a live view reads (``requested``, ``oldest_view``)."""


class NoSuchTransactionError(Error):
    """No transaction has this txid (``txid``)."""


class LimitError(Error):
    """A size limit was exceeded (``size``, ``max``)."""


class KeyTooLargeError(LimitError):
    """A key longer than 64 KiB."""


class ValueTooLargeError(LimitError):
    """A value larger than 64 MiB."""


class MetadataTooLargeError(LimitError):
    """Transaction metadata larger than 64 KiB."""


class TransactionTooLargeError(LimitError):
    """A transaction larger than 1 GiB: split it."""


class InvalidTableNameError(Error):
    """An empty, reserved, NUL-containing or too long table name (``name``, ``reason``)."""


class KeyExistsError(Error):
    """``insert`` of a key that is live (``table``, ``key``)."""


class KeyNotFoundError(Error):
    """``update`` of a key that is not live (``table``, ``key``)."""


class ConflictError(Error):
    """Another transaction committed the same key first (``table``, ``key``): retry."""


class PoisonedError(Error):
    """Writes are refused after an earlier fsync failure (``reason``): reopen."""


class IndexMismatchError(Error):
    """``verify`` found the index disagreeing with the log (``reason``): a bug, reopen."""


class InvalidConfigError(Error):
    """A configuration value or argument out of range (``reason``)."""


class ReadOnlyError(Error):
    """A write on a database opened read-only (``path``)."""


class ClosedError(Error):
    """The database, view or transaction was closed (or already committed)."""


class CodecError(Error):
    """A value could not be encoded or decoded by a table's codec (``codec``)."""


__all__ = [name for name, obj in list(globals().items()) if isinstance(obj, type) and issubclass(obj, Error)]
