"""Whether this worker can reach its database, and the writes it owes it while it cannot.

A worker serves from its in-process snapshot and cooldown board, so a database that goes away
for a while need not stop traffic: reads keep the last snapshot, and writes that cannot wait
(cooldowns, the first success after one, counters, routing traces) are applied in memory and
kept here, in order, to be written when the database answers again. Nothing here does I/O: the
pool calls ``replay`` on a worker thread.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable

from django.db import InterfaceError, OperationalError

logger = logging.getLogger(__name__)

# Writes kept for a database that is away; past this the oldest go first (traces before
# cooldowns matter little, and a store away that long has bigger problems).
MAX_OWED_WRITES = 10_000
# While the database is away, how often a worker tries it again.
RETRY_SECONDS = 1.0

__all__ = ["DatabaseFailure", "StoreHealth", "StoreUnavailable"]

# The errors that mean the database is away (refused, timed out, connection lost), not that a
# statement was wrong: an IntegrityError (a row deleted under a write) is the data's problem
# and must never put a worker into "serving from memory".
DatabaseFailure = (OperationalError, InterfaceError)

# Of those, the ones a database that answers raises about one statement: a deadlock, a
# serialization failure, a lock or statement timeout (PostgreSQL's SQLSTATEs), a busy SQLite.
# The statement is retried later like any failed write, but the worker does not go into
# "serving from memory": that refused keys it had not seen yet (503) until its next check.
STATEMENT_SQLSTATES = {"40001", "40P01", "55P03", "57014"}
STATEMENT_MESSAGES = ("database is locked", "database table is locked")


def unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` (one of DatabaseFailure) means the database is away."""
    if isinstance(exc, InterfaceError):
        return True
    if getattr(exc.__cause__, "sqlstate", None) in STATEMENT_SQLSTATES:
        return False
    return not any(message in str(exc) for message in STATEMENT_MESSAGES)


class StoreUnavailable(Exception):
    """The database is unreachable and this worker has nothing cached to serve from."""


class StoreHealth:
    def __init__(self) -> None:
        self.error = ""  # why the last round trip failed; "" while it works
        self.down_since: float | None = None
        self.owed: deque[Callable[[], object]] = deque(maxlen=MAX_OWED_WRITES)
        self.dropped = 0

    @property
    def down(self) -> bool:
        return self.down_since is not None

    def failed(self, exc: BaseException) -> None:
        described = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc) else ''}"
        if not unreachable(exc):
            logger.warning("a database statement failed (%s); it is tried again later", described)
            return
        if not self.down:
            self.down_since = time.time()
            logger.warning("the database is unreachable (%s): serving from memory", described)
        self.error = described[:300]

    def recovered(self) -> None:
        if self.down:
            logger.warning(
                "the database answers again after %.0f s; writing %d owed writes",
                time.time() - (self.down_since or time.time()),
                len(self.owed),
            )
        self.down_since = None
        self.error = ""

    def owe(self, write: Callable[[], object]) -> None:
        if len(self.owed) == self.owed.maxlen:
            self.dropped += 1
        self.owed.append(write)

    def replay(self) -> None:
        """Write what is owed, oldest first (sync: a worker thread). Stops at the first failure,
        keeping that write and the rest, and raises it."""
        while self.owed:
            write = self.owed[0]
            write()
            self.owed.popleft()
