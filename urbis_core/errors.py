"""The service's error hierarchy.

Every message is written for a person: it says what is wrong and, where it can, what to do.
The API maps these classes to HTTP statuses in one place (`geoapi.errors`).
"""

from __future__ import annotations

from typing import Any


class UrbisError(Exception):
    """Base of every error the service raises on purpose."""


class ConfigError(UrbisError):
    """The YAML configuration is invalid; the message names the file, the layer and the field."""


class DatabaseError(UrbisError):
    """The database cannot be reached, started or prepared."""


class SourceError(UrbisError):
    """A layer's source cannot be read, or its content cannot be stored faithfully."""


class SyncError(UrbisError):
    """A sync run failed for a reason other than its source."""


class NotFound(UrbisError):
    """A collection or a feature that does not exist was asked for."""


class TooLarge(UrbisError):
    """An answer would exceed what one request may hold; the message says how to narrow it."""


class Conflict(UrbisError):
    """The resource is not in a state that allows the request (a job's results before it ends)."""


class NotAuthorized(UrbisError):
    """A request lacks the credentials an operation needs, or brings wrong ones.

    `challenge` is the WWW-Authenticate value that says what to send (RFC 9110, 11.6.1).
    """

    def __init__(self, message: str, challenge: str) -> None:
        super().__init__(message)
        self.challenge = challenge


class InvalidParameter(UrbisError):
    """A request parameter has a value the service cannot use."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(f"Invalid value for parameter '{parameter}': {message}")
        self.parameter = parameter
        self.message = message

    def __reduce__(self) -> tuple[type[InvalidParameter], tuple[str, str]]:
        # raised in worker processes (geoapi.offload) and sent back pickled
        return InvalidParameter, (self.parameter, self.message)


class UnknownCollection(InvalidParameter):
    """A list parameter (`collections`, `--collections`) names ids the catalog does not hold.

    An InvalidParameter, to the command line (a bad option) and to the API (a 400 naming the
    ids; a path's `/collections/{id}` that is not there stays a 404).
    """

    def __init__(self, parameter: str, unknown: tuple[str, ...], known: tuple[str, ...]) -> None:
        names = ", ".join(f"'{i}'" for i in unknown)
        known_ones = f"the collections are: {', '.join(known)}" if known else "none is synced yet"
        super().__init__(parameter, f"no collection {names}; {known_ones}")
        self.unknown = unknown
        self.known = known

    def __reduce__(self) -> tuple[type[UnknownCollection], tuple[Any, ...]]:
        return UnknownCollection, (self.parameter, self.unknown, self.known)


class Unavailable(UrbisError):
    """The service cannot answer now but may soon: too busy, or the database slow or away.

    `retry_after` is the seconds a client should wait before asking again.
    """

    def __init__(self, message: str, retry_after: int = 5) -> None:
        super().__init__(message)
        self.retry_after = retry_after
