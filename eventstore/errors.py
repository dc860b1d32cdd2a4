"""The event store's exceptions: one root, driver errors translated at the boundary."""

from __future__ import annotations


class EventStoreError(Exception):
    """Root of every error the event store raises."""


class ConcurrencyError(EventStoreError):
    """An append expected a stream version that is no longer current.

    Raised when the expected version of an event does not match the stream, or when the
    database's unique key on (stream_id, version) refuses a row a concurrent writer took first.
    Nothing of the batch was written.
    """


class DatabaseUnavailableError(EventStoreError):
    """The database could not be reached; the message names the URL with its password masked."""


class UnsupportedDatabaseURLError(EventStoreError):
    """The database URL names a scheme or form this store does not know."""


class MigrationError(EventStoreError):
    """A migration could not be applied, or an applied migration file was edited afterwards."""


class AppendOnlyViolationError(EventStoreError):
    """The database refused an UPDATE or DELETE on the event log (it is append-only)."""


class InvalidEventError(EventStoreError, ValueError):
    """An event of an append cannot be recorded as given: a naive time, a payload that is not
    UTF-8, a field of the wrong kind. The message names the event (stream, version, type);
    nothing of the batch was written."""


class LockLostError(EventStoreError):
    """A named lock held through :meth:`EventStore.guarded_lock` was lost while held (its
    database session ended); the work it guarded was cancelled."""
