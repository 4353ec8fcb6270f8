"""The stat cache (``.tether/state.db``): a file whose inode, size, mtime and ctime are unchanged
is never hashed again.

It keeps, per tracked path, a *snapshot*: a fingerprint of every file's path and stat with the
id they made, so an untouched folder of 100k files is known without looking file by file.
It also remembers which folder manifests were seen *complete* (every object present in the
cache), so an unchanged ``add`` need not look for 100k objects again. Anything that deletes
objects (gc, fsck) forgets those marks.

It is only a cache: a row is trusted only when all four stat fields match, and the tables are
dropped and rebuilt when the format changes.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path

FORMAT = 3
Row = tuple[str, int, int, int, int, str]  # path, ino, size, mtime_ns, ctime_ns, id


class StatCache:
    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path, timeout=60, isolation_level=None, check_same_thread=False)
        self._set_wal()
        self.db.execute("PRAGMA synchronous=NORMAL")
        if self._version() != FORMAT:
            self.db.execute("BEGIN IMMEDIATE")  # two processes may open a new cache at once
            try:
                if self._version() != FORMAT:
                    self.db.execute("DROP TABLE IF EXISTS stat")
                    self.db.execute("DROP TABLE IF EXISTS complete")
                    self.db.execute("DROP TABLE IF EXISTS snapshot")
                    self.db.execute(
                        "CREATE TABLE stat (path TEXT PRIMARY KEY, ino INTEGER, size INTEGER, "
                        "mtime INTEGER, ctime INTEGER, id TEXT) WITHOUT ROWID"
                    )
                    self.db.execute("CREATE TABLE complete (id TEXT PRIMARY KEY) WITHOUT ROWID")
                    self.db.execute(
                        "CREATE TABLE snapshot (path TEXT PRIMARY KEY, fingerprint TEXT, id TEXT) "
                        "WITHOUT ROWID"
                    )
                    self.db.execute(f"PRAGMA user_version={FORMAT}")
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise

    def _set_wal(self) -> None:
        # switching to WAL ignores the busy timeout: when another process is creating the same
        # database at this instant, wait for it here
        for attempt in range(600):
            try:
                self.db.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or attempt == 599:
                    raise
                time.sleep(0.05)

    def _version(self) -> int:
        return int(self.db.execute("PRAGMA user_version").fetchone()[0])

    def under(self, rel: str) -> dict[str, Row]:
        """Rows for ``rel`` and everything below it, keyed by repository-relative path."""
        rows = self.db.execute(
            "SELECT path, ino, size, mtime, ctime, id FROM stat WHERE path = ? "
            "OR (path >= ? AND path < ?)",
            (rel, rel + "/", rel + "0"),  # "0" sorts right after "/"
        )
        return {r[0]: r for r in rows}  # rows as sqlite made them: no copy per file

    def put_many(self, rows: Iterable[tuple[str, int, int, int, int, str]]) -> None:
        rows = list(rows)
        if not rows:
            return
        self.db.execute("BEGIN IMMEDIATE")
        try:
            self.db.executemany("INSERT OR REPLACE INTO stat VALUES (?, ?, ?, ?, ?, ?)", rows)
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    def snapshot(self, path: str) -> tuple[str, str] | None:
        """(fingerprint, id) last seen for a tracked path."""
        row = self.db.execute(
            "SELECT fingerprint, id FROM snapshot WHERE path = ?", (path,)
        ).fetchone()
        return (row[0], row[1]) if row else None

    def put_snapshot(self, path: str, fingerprint: str, oid: str) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO snapshot VALUES (?, ?, ?)", (path, fingerprint, oid)
        )

    def is_complete(self, tree_id: str) -> bool:
        row = self.db.execute("SELECT 1 FROM complete WHERE id = ?", (tree_id,)).fetchone()
        return row is not None

    def mark_complete(self, tree_id: str) -> None:
        self.db.execute("INSERT OR IGNORE INTO complete VALUES (?)", (tree_id,))

    def forget_complete(self) -> None:
        self.db.execute("DELETE FROM complete")

    def close(self) -> None:
        self.db.close()
