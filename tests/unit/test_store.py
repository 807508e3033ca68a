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
