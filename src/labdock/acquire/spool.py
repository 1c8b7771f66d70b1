"""The durable on-disk spool and the dead-letter store.

Both live in one SQLite database in write-ahead-log mode with
`synchronous=FULL`, so a commit returns only after the log is fsync'd. A
message is acknowledged to the broker only after the commit that contains its
lines (or its dead letter), and its lines leave the spool only after the
database confirmed the write. SQLite was chosen over hand-written segment
files because its commit is crash-safe by construction and it is in the
standard library; group commits keep the cost at one fsync per batch.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from labdock.acquire.lineprotocol import split_lines

SPOOL_FILE = "spool.sqlite"
LOCK_FILE = "spool.lock"

# The write-ahead log is cut back to this size after each checkpoint, so
# that a burst doesn't leave a large log file behind.
JOURNAL_SIZE_LIMIT = 4 * 1024 * 1024

_SCHEMA = """
CREATE TABLE IF NOT EXISTS lines (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    spooled_ns INTEGER NOT NULL,
    topic TEXT NOT NULL,
    body TEXT NOT NULL,
    messages INTEGER NOT NULL DEFAULT 1,
    lines INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS deadletters (
    id INTEGER PRIMARY KEY,
    received_ns INTEGER NOT NULL,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    stage TEXT NOT NULL,
    reason TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS deadletters_reason ON deadletters (reason);
"""


_COUNT_QUERY = (
    "SELECT COALESCE(SUM(messages), 0), COALESCE(SUM(LENGTH(CAST(body AS BLOB))), 0)"
    " FROM lines"
)


def _add_count_columns(connection: sqlite3.Connection) -> None:
    """Add the `messages` and `lines` columns to a spool made before they
    existed: each of its rows contains one message, with its lines uncounted."""
    columns = {row[1] for row in connection.execute("PRAGMA table_info(lines)")}
    if "messages" not in columns:
        connection.execute(
            "ALTER TABLE lines ADD COLUMN messages INTEGER NOT NULL DEFAULT 1"
        )
    if "lines" not in columns:
        connection.execute(
            "ALTER TABLE lines ADD COLUMN lines INTEGER NOT NULL DEFAULT 0"
        )


class SpoolError(Exception):
    """The spool can't be opened or written (disk full, permissions, corruption)."""


# An entry to spool: (spooled_ns, topic, body), optionally with the number of
# messages whose lines the body contains and the number of lines. Left out,
# they are 1 and 0, and 0 lines means "count them from the body".
NewEntry = tuple[int, str, str] | tuple[int, str, str, int, int]


@dataclass(frozen=True, slots=True)
class SpooledEntry:
    """The lines of one or more messages on one topic, waiting to be written."""

    id: int
    spooled_ns: int
    topic: str
    body: str
    messages: int = 1
    lines: int = 0

    def line_count(self) -> int:
        """Return the number of lines in the body."""
        if self.lines:
            return self.lines
        # A string field may contain a raw newline, which only split_lines
        # distinguishes from a line break.
        return 1 if "\n" not in self.body else len(split_lines(self.body))


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message or line that could not be stored, with the reason."""

    received_ns: int
    topic: str
    payload: bytes
    stage: str  # "decode" for payloads, "write" for lines the database rejected
    reason: str
    detail: str
    id: int | None = None


def _connect(path: Path, *, synchronous: str) -> sqlite3.Connection:
    connection = sqlite3.connect(
        path, isolation_level=None, check_same_thread=False, timeout=30
    )
    # Takes effect only on a new database, before its first table: freed
    # pages can then be given back to the file system.
    connection.execute("PRAGMA auto_vacuum=INCREMENTAL")
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute(f"PRAGMA journal_size_limit={JOURNAL_SIZE_LIMIT}")
    connection.execute(f"PRAGMA synchronous={synchronous}")
    return connection


def _open_error(path: Path, error: OSError | sqlite3.Error) -> SpoolError:
    """Return the SpoolError for a spool file that can't be opened, with its fix."""
    # OperationalError covers locking, permissions and a full disk. Other
    # DatabaseErrors ("file is not a database", "database disk image is
    # malformed") mean that the file itself is damaged.
    if isinstance(error, sqlite3.DatabaseError) and not isinstance(
        error, sqlite3.OperationalError
    ):
        return SpoolError(
            f"the spool {path} is damaged: {error}; stop the service, move it "
            "and its -wal and -shm files aside so that a new spool is created, "
            "and recover what it contains with the sqlite3 shell's .recover command"
        )
    return SpoolError(
        f"cannot open the spool {path}: {error}; check that the "
        "directory exists, is writable by this user and has free space"
    )


class Spool:
    """The spool of one acquisition service.

    `append` is called by the ingest thread and `take`/`remove` by the
    writer thread; each has its own connection. Byte accounting counts the
    UTF-8 size of spooled bodies, not the file size: the file also contains
    SQLite's pages and index, and the write-ahead log adds up to 4 MiB. One
    commit may pass the limit by its own size, because the limit is checked
    before each commit. A lock file keeps a second process out of the
    directory.
    """

    def __init__(self, directory: Path, max_bytes: int) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.path = directory / SPOOL_FILE
        try:
            directory.mkdir(parents=True, exist_ok=True)
            self._lock_file = _lock_directory(directory)
        except OSError as error:
            raise _open_error(self.path, error) from error
        try:
            self._ingest = _connect(self.path, synchronous="FULL")
            self._ingest.executescript(_SCHEMA)
            _add_count_columns(self._ingest)
            # Removing written lines may be lost in a crash: the lines are
            # then written again with the same time and overwrite themselves.
            self._writer = _connect(self.path, synchronous="NORMAL")
            row = self._ingest.execute(_COUNT_QUERY).fetchone()
        except (OSError, sqlite3.Error) as error:
            self._lock_file.close()
            raise _open_error(self.path, error) from error
        self._lock = threading.Lock()
        self._messages = int(row[0])
        self._bytes = int(row[1])
        self._changed = threading.Condition()

    # The ingest side.

    def append(
        self,
        entries: Sequence[NewEntry],
        deadletters: Sequence[DeadLetter] = (),
    ) -> None:
        """Store entries `(spooled_ns, topic, body[, messages, lines])` and dead
        letters in one commit.

        Returns after the commit is durable. Raises SpoolError when it fails,
        in which case nothing of this call is stored.
        """
        rows = [entry if len(entry) == 5 else (*entry, 1, 0) for entry in entries]
        size = sum(
            len(body) if body.isascii() else len(body.encode())
            for _, _, body, _, _ in rows
        )
        messages = sum(row[3] for row in rows)
        try:
            self._ingest.execute("BEGIN")
            if rows:
                self._ingest.executemany(
                    "INSERT INTO lines (spooled_ns, topic, body, messages, lines)"
                    " VALUES (?, ?, ?, ?, ?)",
                    rows,
                )
            if deadletters:
                self._insert_deadletters(self._ingest, deadletters)
            self._ingest.execute("COMMIT")
        except sqlite3.Error as error:
            if self._ingest.in_transaction:
                self._ingest.execute("ROLLBACK")
            raise SpoolError(f"cannot write the spool {self.path}: {error}") from error
        with self._lock:
            self._messages += messages
            self._bytes += size
        if entries:
            with self._changed:
                self._changed.notify_all()

    @staticmethod
    def _insert_deadletters(
        connection: sqlite3.Connection, deadletters: Iterable[DeadLetter]
    ) -> None:
        connection.executemany(
            "INSERT INTO deadletters (received_ns, topic, payload, stage, reason, detail)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            [
                (d.received_ns, d.topic, d.payload, d.stage, d.reason, d.detail)
                for d in deadletters
            ],
        )

    @property
    def is_full(self) -> bool:
        return self._bytes >= self.max_bytes

    @property
    def messages(self) -> int:
        return self._messages

    @property
    def bytes(self) -> int:
        return self._bytes

    # The writer side.

    def wait_for_entries(self, timeout: float) -> None:
        """Block until `append` stores entries or `timeout` seconds pass."""
        with self._changed:
            self._changed.wait(timeout)

    def wake(self) -> None:
        """Wake a writer blocked in `wait_for_entries` (used on shutdown)."""
        with self._changed:
            self._changed.notify_all()

    def take(self, after_id: int, max_lines: int, max_bytes: int) -> list[SpooledEntry]:
        """Return the oldest entries after `after_id`, within both bounds.

        The first entry is returned even when it alone exceeds `max_bytes`.
        """
        cursor = self._writer.execute(
            "SELECT id, spooled_ns, topic, body, messages, lines FROM lines"
            " WHERE id > ? ORDER BY id LIMIT ?",
            (after_id, max_lines),
        )
        entries: list[SpooledEntry] = []
        lines = 0
        size = 0
        for row in cursor:
            body: str = row[3]
            body_lines = row[5] or body.count("\n") + 1
            body_size = len(body) + 1
            if entries and (
                lines + body_lines > max_lines or size + body_size > max_bytes
            ):
                break
            entries.append(SpooledEntry(row[0], row[1], row[2], body, row[4], row[5]))
            lines += body_lines
            size += body_size
        cursor.close()
        if not entries:
            self._recount()
        return entries

    def _recount(self) -> None:
        # `labdock deadletter replay` adds lines from another process, which
        # the in-memory counts don't see; an empty read is a cheap moment to
        # correct them.
        row = self._writer.execute(_COUNT_QUERY).fetchone()
        with self._lock:
            self._messages = int(row[0])
            self._bytes = int(row[1])

    def remove(
        self, entries: Sequence[SpooledEntry], deadletters: Sequence[DeadLetter] = ()
    ) -> None:
        """Remove written entries, storing the dead letters of rejected lines."""
        if not entries and not deadletters:
            return
        size = sum(
            len(body) if body.isascii() else len(body.encode())
            for body in (entry.body for entry in entries)
        )
        try:
            if deadletters:
                # Rejected lines must not be lost with their entry, so this
                # commit is synchronous.
                self._writer.execute("PRAGMA synchronous=FULL")
            self._writer.execute("BEGIN")
            if deadletters:
                self._insert_deadletters(self._writer, deadletters)
            first, last = (entries[0].id, entries[-1].id) if entries else (0, -1)
            if last - first + 1 == len(entries):
                # Ids are unique and taken in order, so a span as long as the
                # list contains exactly these entries.
                self._writer.execute(
                    "DELETE FROM lines WHERE id BETWEEN ? AND ?", (first, last)
                )
            else:
                self._writer.executemany(
                    "DELETE FROM lines WHERE id = ?", [(entry.id,) for entry in entries]
                )
            self._writer.execute("COMMIT")
            if deadletters:
                self._writer.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.Error as error:
            if self._writer.in_transaction:
                self._writer.execute("ROLLBACK")
            raise SpoolError(f"cannot update the spool {self.path}: {error}") from error
        with self._lock:
            self._messages -= sum(entry.messages for entry in entries)
            self._bytes -= size

    def oldest_age(self, now_ns: int | None = None) -> float:
        """Return the age in seconds of the oldest spooled entry (0 when empty)."""
        row = self._writer.execute(
            "SELECT spooled_ns FROM lines ORDER BY id LIMIT 1"
        ).fetchone()
        if row is None:
            return 0.0
        now = time.time_ns() if now_ns is None else now_ns
        return max(0.0, (now - int(row[0])) / 1e9)

    def checkpoint(self) -> None:
        """Fold the write-ahead log into the database file and give free pages
        back, shrinking both files."""
        # A busy database keeps its log until the next checkpoint.
        with contextlib.suppress(sqlite3.Error):
            self._writer.execute("PRAGMA incremental_vacuum")
            self._writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def close(self) -> None:
        self._ingest.close()
        self._writer.close()
        self._lock_file.close()


def _lock_directory(directory: Path) -> TextIO:
    """Lock the spool directory for this process, or raise SpoolError."""
    handle = (directory / LOCK_FILE).open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        owner = handle.read().strip() or "unknown"
        handle.close()
        raise SpoolError(
            f"the spool {directory} is in use by another process (pid {owner}); "
            "give each replica its own spool.directory"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


class DeadLetterStore:
    """Read and re-drive dead letters, for `labdock deadletter`."""

    def __init__(self, directory: Path) -> None:
        path = directory / SPOOL_FILE
        if not path.exists():
            raise SpoolError(
                f"no spool at {path}; pass the spool directory of the service "
                "(spool.directory in its configuration)"
            )
        try:
            self.connection = _connect(path, synchronous="FULL")
        except sqlite3.Error as error:
            raise _open_error(path, error) from error
        try:
            self.connection.executescript(_SCHEMA)
        except sqlite3.Error as error:
            self.connection.close()
            raise _open_error(path, error) from error

    def list(
        self, *, reason: str | None = None, limit: int | None = None
    ) -> list[DeadLetter]:
        query = "SELECT id, received_ns, topic, payload, stage, reason, detail FROM deadletters"
        parameters: list[object] = []
        if reason:
            query += " WHERE reason = ?"
            parameters.append(reason)
        query += " ORDER BY id"
        if limit is not None:
            query += " LIMIT ?"
            parameters.append(limit)
        return [
            DeadLetter(
                received_ns=row[1],
                topic=row[2],
                payload=bytes(row[3]),
                stage=row[4],
                reason=row[5],
                detail=row[6],
                id=row[0],
            )
            for row in self.connection.execute(query, parameters)
        ]

    def counts(self) -> dict[str, int]:
        return {
            reason: count
            for reason, count in self.connection.execute(
                "SELECT reason, COUNT(*) FROM deadletters GROUP BY reason ORDER BY reason"
            )
        }

    def resolve(
        self,
        resolved: Sequence[DeadLetter],
        entries: Sequence[tuple[int, str, str]],
        still_failing: Sequence[tuple[DeadLetter, str, str]],
    ) -> None:
        """In one commit: spool `entries`, drop `resolved` dead letters, and
        update the reason of those still failing."""
        self.connection.execute("BEGIN")
        try:
            self.connection.executemany(
                "INSERT INTO lines (spooled_ns, topic, body) VALUES (?, ?, ?)", entries
            )
            self.connection.executemany(
                "DELETE FROM deadletters WHERE id = ?", [(d.id,) for d in resolved]
            )
            self.connection.executemany(
                "UPDATE deadletters SET reason = ?, detail = ? WHERE id = ?",
                [(reason, detail, d.id) for d, reason, detail in still_failing],
            )
            self.connection.execute("COMMIT")
        except sqlite3.Error:
            self.connection.execute("ROLLBACK")
            raise

    def close(self) -> None:
        self.connection.close()
