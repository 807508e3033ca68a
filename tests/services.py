"""Is PostgreSQL / Redis reachable? Used by the Makefile and by the tests that need them.

python -m tests.services postgres postgres://postgres@127.0.0.1:5432/postgres
python -m tests.services redis redis://127.0.0.1:6379/0
"""

from __future__ import annotations

import sys


def postgres_reachable(url: str) -> bool:
    try:
        import psycopg

        with psycopg.connect(url, connect_timeout=3) as connection:
            connection.execute("select 1")
        return True
    except Exception:  # noqa: BLE001 - any failure means "not usable here"
        return False


def redis_reachable(url: str) -> bool:
    try:
        import redis

        return bool(redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2).ping())
    except Exception:  # noqa: BLE001
        return False


if __name__ == "__main__":
    kind, url = sys.argv[1], sys.argv[2]
    check = postgres_reachable if kind == "postgres" else redis_reachable
    sys.exit(0 if check(url) else 1)
