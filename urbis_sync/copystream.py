"""COPY from a worker thread: the database parses one batch while Python prepares the next.

The two halves of a load (Python reading, hashing and validating; PostgreSQL parsing and
writing rows) then run on two cores at once instead of taking turns.
"""

from __future__ import annotations

import queue
import threading
from types import TracebackType
from typing import Any

import psycopg
from psycopg import sql

from urbis_core.errors import SourceError

# Batches waiting for the worker: enough to keep it busy, few enough to keep memory bounded.
QUEUE_DEPTH = 2


class CopyStream:
    """`COPY table (columns) FROM STDIN (FORMAT csv)` fed with prepared CSV batches."""

    def __init__(
        self, conn: psycopg.Connection[Any], table: sql.Composable, columns: list[str]
    ) -> None:
        self._statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv)").format(
            table, sql.SQL(", ").join(sql.Identifier(c) for c in columns)
        )
        self._conn = conn
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=QUEUE_DEPTH)
        self._error: BaseException | None = None
        self._worker = threading.Thread(target=self._pump, name="urbis-copy", daemon=True)

    def __enter__(self) -> CopyStream:
        self._worker.start()
        return self

    def write(self, rows: bytes) -> None:
        if self._error is not None:
            self._finish()
        if rows:
            self._queue.put(rows)

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is None:
            self._finish()
        else:  # the caller's error wins; the transaction it is in rolls back
            self._queue.put(None)
            self._worker.join()

    def _finish(self) -> None:
        self._queue.put(None)
        self._worker.join()
        error, self._error = self._error, None
        if isinstance(error, psycopg.errors.DataError):
            diag = error.diag
            where = (diag.context or "").strip().splitlines()[0] if diag.context else ""
            raise SourceError(
                f"a value does not fit its field's type: {diag.message_primary} ({where})"
            ) from error
        if error is not None:
            raise error

    def _pump(self) -> None:
        try:
            with self._conn.cursor() as cur, cur.copy(self._statement) as copy:
                while (rows := self._queue.get()) is not None:
                    copy.write(rows)
        except BaseException as exc:  # handed to the caller's thread
            self._error = exc
            while self._queue.get() is not None:  # let the producer finish putting
                pass
