"""A bounded pool of PostgreSQL connections shared by every thread of one Store (issue 30 item 5).

One connection per thread, as SQLite gets, ran out at 200 concurrent raters: Streamlit runs every
rerun of every session on a thread of its own, each opened its own connection, and past the
server's max_connections (100 by default, shared with whatever else uses the server) submits
failed with "too many clients" and answers were lost (the load-pg trial found 9,850 of 20,000).
Here a thread borrows a connection for one query or one transaction and gives it back; at most
`size` are open, a thread waits (up to `wait_s`) for a free one. A submit holds its connection for
milliseconds, so a few serve hundreds of raters.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager

POOL_SIZE = 10  # per Store (one per study in the server process): a tenth of PostgreSQL's default max_connections
WAIT_S = 60.0


class PgPool:
    """First come, first served: a returned connection goes straight to the longest-waiting thread
    (a plain semaphore let a releasing thread take it back at once, and some waited seconds)."""

    def __init__(self, url: str, size: int = POOL_SIZE, wait_s: float = WAIT_S):
        if size < 1:
            raise ValueError(f"a connection pool needs at least 1 connection, got {size}")
        self.url, self.size, self.wait_s = url, size, wait_s
        self._lock = threading.Lock()
        self._idle: list = []
        self._opened = 0  # connections open or being opened, idle ones included
        self._waiters: deque[list] = deque()  # [event, handed connection or None (a slot to open one in)]

    def _open(self):
        try:
            import psycopg
        except ImportError as e:
            raise ValueError(
                "a PostgreSQL database needs psycopg: pip install -c constraints.txt 'imagen-bench[postgres]'"
            ) from e
        try:
            return psycopg.connect(self.url, autocommit=True)
        except psycopg.OperationalError as e:
            raise ValueError(
                f"cannot open the PostgreSQL ratings database: {e} (give the password with PGPASSWORD or ~/.pgpass)"
            ) from e

    def _take(self):
        """An idle connection, or None: a slot of the pool to open a new one in."""
        with self._lock:
            if not self._waiters:
                if self._idle:
                    return self._idle.pop()
                if self._opened < self.size:
                    self._opened += 1
                    return None
            ticket = [threading.Event(), None]
            self._waiters.append(ticket)
        if not ticket[0].wait(self.wait_s):
            with self._lock:
                if ticket in self._waiters:
                    self._waiters.remove(ticket)
                    raise ValueError(
                        f"no PostgreSQL connection came free within {self.wait_s:.0f} s (the server is overloaded or stuck)"
                    )
        return ticket[1]  # handed over (perhaps just as the wait ran out)

    def _give(self, conn) -> None:
        """Back to the longest-waiting thread, else to the idle list; None gives back the slot."""
        with self._lock:
            if self._waiters:
                ticket = self._waiters.popleft()
                ticket[1] = conn
                ticket[0].set()
            elif conn is None:
                self._opened -= 1
            else:
                self._idle.append(conn)

    @contextmanager
    def connection(self) -> Iterator:
        """A connection for one query or transaction; back to the pool after it (closed if it broke)."""
        conn = self._take()
        try:
            if conn is not None and conn.closed:  # dropped while idle (a server restart)
                conn = None
            if conn is None:
                conn = self._open()
            yield conn
        except BaseException:
            if conn is not None and not conn.closed and (conn.broken or not _idle(conn)):
                conn.close()
            raise
        finally:
            self._give(
                conn if conn is not None and not conn.closed and not conn.broken and _idle(conn) else _closed(conn)
            )

    def close(self) -> None:
        """Close every idle connection (the pool opens new ones when used again)."""
        with self._lock:
            idle, self._idle = self._idle, []
            self._opened -= len(idle)
        for conn in idle:
            conn.close()


def _idle(conn) -> bool:
    from psycopg.pq import TransactionStatus

    return conn.info.transaction_status == TransactionStatus.IDLE


def _closed(conn) -> None:
    """Close a connection that cannot go back to the pool; its slot goes back instead."""
    if conn is not None and not conn.closed:
        conn.close()
    return None
