"""What counts as the database being away, for the pool's serve-from-memory mode."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, OperationalError

from accounts.pool import Pool


async def test_it_owes_a_write_the_database_refused_for_being_away():
    pool = Pool()

    def refused() -> None:
        raise OperationalError("connection refused")

    await pool.write(refused)
    assert pool.store.down and list(pool.store.owed) == [refused]


async def test_it_does_not_take_an_integrity_error_for_a_database_outage():
    # A row deleted under a write is the data's problem: taking it for an outage made every
    # request with a key the worker had not seen yet get 503 until the next check.
    pool = Pool()

    def dangling() -> None:
        raise IntegrityError("violates foreign key constraint")

    with pytest.raises(IntegrityError):
        await pool.write(dangling)
    assert not pool.store.down and not pool.store.owed


async def test_a_deadlock_is_retried_later_without_taking_the_database_for_away():
    # PostgreSQL chose a worker's bookkeeping write as a deadlock's victim (a TRUNCATE ran at the
    # same time): taken for an outage, it made requests with keys the worker had not seen get
    # 503 "cannot reach its database" until its next check.
    pool = Pool()

    class DeadlockDetected(Exception):
        sqlstate = "40P01"

    def deadlocked() -> None:
        try:
            raise DeadlockDetected("deadlock detected")
        except DeadlockDetected as exc:
            raise OperationalError("deadlock detected") from exc

    await pool.write(deadlocked)
    assert not pool.store.down and list(pool.store.owed) == [deadlocked]


async def test_a_busy_sqlite_is_not_an_absent_one():
    pool = Pool()

    def locked() -> None:
        raise OperationalError("database is locked")

    await pool.write(locked)
    assert not pool.store.down and list(pool.store.owed) == [locked]
