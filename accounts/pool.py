"""The in-process view of the pool that request handling reads, and the bookkeeping it writes.

A worker keeps a ``Snapshot`` (credentials with decrypted secrets, client keys, settings) and a
``QuotaBoard`` (current cooldowns) in memory. Every ``POOL_REFRESH_SECONDS`` a timer reads the
change counters (``accounts.versions``) and reloads only what changed, so while nothing changes
there is no database query per request, no request waits on the check, and a change made
anywhere (admin, command, another worker's 429) is seen by every worker within about a second.
(Without the timer, in tests and commands, the request that finds the check due runs it.)
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings

from accounts import catalog, crypto, limiter, omissions, patterns, quota, usage, versions
from accounts.cooldown import Failure, QuotaRecord, apply_failure
from accounts.limits import KeyLimits
from accounts.oauth import tokens
from accounts.oauth import usage as usage_poll
from accounts.prices import Price
from accounts.rotation import Selector
from accounts.secrets import Secret
from accounts.store import RETRY_SECONDS, DatabaseFailure, StoreHealth, StoreUnavailable

logger = logging.getLogger(__name__)

MAX_CACHED_ROUTES = 2048

# Bookkeeping that no request waits for (the flush, routing traces, account windows) runs on a
# thread of its own. On asgiref's one thread for thread-sensitive calls, which the request path's
# reads share (the change check every POOL_REFRESH_SECONDS), a flush of a few thousand ledger
# rows made whichever request checked next wait for all of it: stalls of 100-300 ms at p99 under
# load (bench/serving.py).
_bookkeeping_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bookkeeping")


def off_path(func: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
    """``func`` (synchronous, database) as a coroutine function run on the bookkeeping thread,
    with Django's connection handling around each call."""
    return database_sync_to_async(func, thread_sensitive=False, executor=_bookkeeping_thread)


@dataclass(frozen=True, slots=True)
class ModelRoute:
    upstream: str
    alias: str
    display_name: str = ""
    max_input_tokens: int | None = None
    max_tokens: int | None = None
    created_at: str = catalog.EPOCH


@dataclass(frozen=True, slots=True, eq=False)
class CredentialView:
    credential_id: int
    provider: str
    label: str
    secret: Secret
    base_url: str
    headers: dict[str, str]
    proxy_url: str
    priority: int
    weight: int
    prefix: str
    routes: tuple[ModelRoute, ...]
    excluded: tuple[str, ...]
    disable_cooling: bool | None
    request_retry: int | None
    options: dict[str, Any] = field(default_factory=dict)
    # Fields this credential's server refuses (accounts.omissions). The one mutable part of a
    # view: the worker that learns a field adds it here at once, and the database row it also
    # writes brings every other worker's next snapshot (and this one's) up to date.
    omitted: set[str] = field(default_factory=set)
    # "oauth": ``secret`` is empty; the provider asks accounts.oauth.tokens for the current token.
    auth_kind: str = "api_key"

    def resolve(self, requested: str, force_prefix: bool) -> str | None:
        """The upstream model name for a client's model name, or None if not served here."""
        name = requested
        if self.prefix and requested.startswith(self.prefix + "/"):
            name = requested[len(self.prefix) + 1 :]
        elif self.prefix and force_prefix:
            return None
        found = self._route_for(name)
        if found is None:
            return None
        upstream, alias = found
        # The same test as listed_models: a route excluded by its alias or its upstream name is
        # not served under either name.
        if self.excluded and (
            patterns.matches_any(self.excluded, name)
            or patterns.matches_any(self.excluded, alias)
            or patterns.matches_any(self.excluded, upstream)
        ):
            return None
        return upstream

    def _route_for(self, name: str) -> tuple[str, str] | None:
        """(upstream name, alias) of the route serving ``name``."""
        if self.routes:
            lowered = name.lower()
            for route in self.routes:
                if route.alias.lower() == lowered:
                    return route.upstream, route.alias
            for route in self.routes:
                if route.upstream.lower() == lowered:
                    return route.upstream, route.alias
            return None
        family = catalog.FAMILY_PREFIXES.get(self.provider)
        if family and name.startswith(family) and "/" not in name:
            return name, name
        return None

    def listed_models(self, force_prefix: bool) -> list[tuple[str, ModelRoute]]:
        """(client-visible id, route) for /v1/models."""
        if self.routes:
            base = list(self.routes)
        else:
            base = [
                ModelRoute(
                    m.id, m.id, m.display_name, m.max_input_tokens, m.max_tokens, m.created_at
                )
                for m in catalog.CATALOGS.get(self.provider, ())
            ]
        listed = []
        for route in base:
            if self.excluded and (
                patterns.matches_any(self.excluded, route.alias)
                or patterns.matches_any(self.excluded, route.upstream)
            ):
                continue
            if self.prefix:
                listed.append((f"{self.prefix}/{route.alias}", route))
                if force_prefix:
                    continue
            listed.append((route.alias, route))
        return listed


@dataclass(frozen=True, slots=True)
class Route:
    """One way to serve a request: a credential and the upstream model name to ask it for."""

    credential: CredentialView
    upstream_model: str

    @property
    def credential_id(self) -> int:
        return self.credential.credential_id

    @property
    def priority(self) -> int:
        return self.credential.priority

    @property
    def weight(self) -> int:
        return self.credential.weight


@dataclass(frozen=True, slots=True)
class ClientKeyView:
    key_id: int
    name: str
    prefix: str
    digest: str
    allowed_models: tuple[str, ...]
    limits: KeyLimits = KeyLimits()

    @classmethod
    def of(cls, key) -> ClientKeyView:
        limits = key.limits
        return cls(key.pk, key.name, key.prefix, key.digest, tuple(key.allowed_list), limits)

    def may_use(self, model: str) -> bool:
        return not self.allowed_models or patterns.matches_any(self.allowed_models, model)


@dataclass(frozen=True, slots=True)
class ProxyConfig:
    nonstream_keepalive_interval: float = 0
    stream_keepalive_seconds: float = 0
    bootstrap_retries: int = 0
    request_retry: int = 3
    max_retry_credentials: int = 0
    max_retry_interval: float = 30
    routing_strategy: str = "round-robin"
    session_affinity: bool = False
    session_affinity_ttl: int = 3600
    disable_cooling: bool = False
    transient_error_cooldown_seconds: int = 60
    passthrough_headers: bool = False
    force_model_prefix: bool = False
    proxy_url: str = ""
    upstream_connect_timeout: float = 10
    upstream_read_timeout: float = 600
    max_request_body_bytes: int = 32 * 1024 * 1024

    def cooling_disabled_for(self, credential: CredentialView) -> bool:
        if credential.disable_cooling is not None:
            return credential.disable_cooling
        return self.disable_cooling

    def retry_rounds_for(self, credential: CredentialView) -> int:
        if credential.request_retry is not None:
            return credential.request_retry
        return self.request_retry


@dataclass(eq=False)
class Snapshot:
    version: int
    config: ProxyConfig
    credentials: tuple[CredentialView, ...]
    keys: dict[str, ClientKeyView]
    unreadable: tuple[str, ...] = ()
    # The admin's price table (accounts.prices), by model name.
    prices: dict[str, Price] = field(default_factory=dict)
    _routes: dict[str, tuple[Route, ...]] = field(default_factory=dict)
    # Filled lazily by claude_api.models_list for GET /v1/models.
    model_entries: list[dict[str, Any]] | None = None

    def routes_for(self, model: str) -> tuple[Route, ...]:
        """Every enabled credential that serves ``model``, by priority (highest first) then id."""
        cached = self._routes.get(model)
        if cached is not None:
            return cached
        force = self.config.force_model_prefix
        routes = []
        for credential in self.credentials:
            upstream = credential.resolve(model, force)
            if upstream is not None:
                routes.append(Route(credential, upstream))
        routes.sort(key=lambda r: (-r.priority, r.credential_id))
        if len(self._routes) >= MAX_CACHED_ROUTES:
            self._routes.clear()
        result = self._routes[model] = tuple(routes)
        return result

    def credential(self, credential_id: int) -> CredentialView | None:
        for credential in self.credentials:
            if credential.credential_id == credential_id:
                return credential
        return None


def load_snapshot() -> Snapshot:
    """Build a snapshot from the database (synchronous; call through database_sync_to_async)."""
    from accounts.models import ClientKey, Credential, ModelPrice, ProxySettings

    version = versions.read_from_database()[0]
    row = ProxySettings.load()
    config = ProxyConfig(**{f: getattr(row, f) for f in ProxyConfig.__dataclass_fields__})
    views, unreadable = [], []
    enabled = (
        Credential.objects.filter(enabled=True)
        # Accounts that need a login serve nothing until they get one.
        .exclude(auth_kind="oauth", oauth__isnull=True)
        .exclude(auth_kind="oauth", oauth__state="needs_login")
    )
    for credential in enabled.prefetch_related("models"):
        try:
            secret = credential.get_secret() if credential.auth_kind != "oauth" else ""
        except crypto.SecretUnavailable:
            unreadable.append(credential.label)
            logger.error("credential %r skipped: its secret cannot be decrypted", credential.label)
            continue
        views.append(_credential_view(credential, secret, config))
    keys = {key.digest: ClientKeyView.of(key) for key in ClientKey.objects.filter(enabled=True)}
    price_table = {
        row.model: Price(row.input, row.output, row.cache_read, row.cache_write)
        for row in ModelPrice.objects.all()
    }
    return Snapshot(version, config, tuple(views), keys, tuple(unreadable), price_table)


def _credential_view(credential, secret: str, config: ProxyConfig) -> CredentialView:
    # "" = the environment's proxy settings; "direct" = none at all (see claude_api.http).
    proxy_url = credential.proxy_url.strip() or config.proxy_url.strip()
    if proxy_url.lower() in ("direct", "none"):
        proxy_url = "direct"
    routes = tuple(
        ModelRoute(
            upstream=m.name,
            alias=m.alias or m.name,
            display_name=m.display_name or m.alias or m.name,
            max_input_tokens=m.max_input_tokens,
            max_tokens=m.max_tokens,
            created_at=credential.created_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        )
        for m in credential.models.all()
    )
    return CredentialView(
        credential_id=credential.pk,
        provider=credential.provider,
        label=credential.label,
        secret=Secret(secret),
        base_url=credential.effective_base_url,
        headers=dict(credential.extra_headers or {}),
        proxy_url=proxy_url,
        priority=credential.priority,
        weight=credential.weight,
        prefix=credential.prefix.strip(),
        routes=routes,
        excluded=tuple(credential.excluded_list),
        disable_cooling=credential.disable_cooling,
        request_retry=credential.request_retry,
        options={
            "max_tokens_field": credential.openai_max_tokens_field,
            "include_usage": credential.openai_include_usage,
            "reasoning_field": credential.openai_reasoning_field,
            "send_reasoning_effort": credential.openai_send_reasoning_effort,
        },
        omitted=set(omissions.fields(credential.learned_omissions)),
        auth_kind=credential.auth_kind,
    )


class QuotaBoard:
    """Cooldowns currently known to this worker, keyed by (credential id, model); '' = all models."""

    def __init__(self) -> None:
        self.version = -1
        self.records: dict[tuple[int, str], QuotaRecord] = {}

    def blocking(self, credential_id: int, model: str, now: float) -> QuotaRecord | None:
        for key in ((credential_id, ""), (credential_id, model)):
            record = self.records.get(key)
            if record is not None and record.blocks(now):
                return record
        return None

    def get(self, credential_id: int, model: str) -> QuotaRecord | None:
        return self.records.get((credential_id, model))

    def put(self, credential_id: int, model: str, record: QuotaRecord | None) -> None:
        if record is None or record.is_clean:
            self.records.pop((credential_id, model), None)
        else:
            self.records[(credential_id, model)] = record


class Counters:
    """Successes and failures per credential and client-key last use, flushed periodically."""

    def __init__(self) -> None:
        self.successes: Counter[int] = Counter()
        self.failures: Counter[int] = Counter()
        # Requests that passed a credential by because it was cooling down.
        self.skips: Counter[int] = Counter()
        self.keys_used: dict[int, float] = {}
        self.flushed_at = time.monotonic()
        self.flushes = 0

    def restore(
        self, drained: tuple[dict[int, int], dict[int, int], dict[int, float], dict[int, int]]
    ) -> None:
        """Put back counts whose write failed, for the next flush."""
        successes, failures, keys_used, skips = drained
        self.successes.update(successes)
        self.failures.update(failures)
        self.skips.update(skips)
        for key_id, used_at in keys_used.items():
            self.keys_used[key_id] = max(used_at, self.keys_used.get(key_id, 0.0))

    def drain(self) -> tuple[dict[int, int], dict[int, int], dict[int, float], dict[int, int]]:
        drained = (
            dict(self.successes),
            dict(self.failures),
            dict(self.keys_used),
            dict(self.skips),
        )
        self.successes.clear()
        self.failures.clear()
        self.keys_used.clear()
        self.skips.clear()
        self.flushed_at = time.monotonic()
        self.flushes += 1
        return drained

    @property
    def pending(self) -> bool:
        return bool(self.successes or self.failures or self.keys_used or self.skips)


class Pool:
    """This worker's pool state. One instance per process (``pool`` below)."""

    def __init__(self) -> None:
        self.snapshot: Snapshot | None = None
        self.board = QuotaBoard()
        self.selector = Selector()
        self.counters = Counters()
        self.store = StoreHealth()
        self.ledger = usage.Ledger()
        self._checked_at = 0.0
        self._background: set[asyncio.Task] = set()
        self._flush_timer: asyncio.Task | None = None
        self._refresh_timer: asyncio.Task | None = None

    def reset(self) -> None:
        """Forget everything (tests, and after a fork)."""
        self.__init__()
        tokens.reset()

    async def current(self) -> Snapshot:
        if self.snapshot is None:
            await self.refresh()
        elif self._refresh_timer is not None:
            pass  # the worker's refresh timer keeps the snapshot fresh: no request waits on it
        elif self.store.down:
            # Never make a request wait on a database known to be away: serve from memory and
            # try it again in the background.
            if time.monotonic() - self._checked_at >= RETRY_SECONDS:
                self._checked_at = time.monotonic()
                self.spawn(self.refresh())
        elif time.monotonic() - self._checked_at >= settings.POOL_REFRESH_SECONDS:
            await self.refresh()
        assert self.snapshot is not None
        if (
            self._flush_timer is None
            and time.monotonic() - self.counters.flushed_at >= settings.STATS_FLUSH_SECONDS
        ):
            # Without the timer (in-process callers: tests, management commands), traffic
            # drives the flush.
            # Mark first: the requests arriving before the flush task runs must not spawn more.
            self.counters.flushed_at = time.monotonic()
            self.spawn(self.flush())
        tokens.maybe_sweep(self.spawn)
        usage_poll.maybe_poll(self.spawn)
        return self.snapshot

    async def refresh(self) -> None:
        # Mark first so concurrent requests do not all run the check.
        self._checked_at = time.monotonic()
        try:
            await self._refresh()
        except DatabaseFailure as exc:
            self.store.failed(exc)
            if self.snapshot is None:
                raise StoreUnavailable(self.store.error) from exc
            return
        self.store.recovered()

    async def _refresh(self) -> None:
        if self.store.owed:
            # First what this worker owes (cooldowns it applied in memory): the board reloaded
            # below must include them.
            await database_sync_to_async(self.store.replay)()
        current = await versions.read()
        if current is None:
            current = await database_sync_to_async(versions.read_from_database)()
        config_version, quota_version, tokens_version = current
        tokens.cache.observe(tokens_version)
        if self.snapshot is None or self.snapshot.version != config_version:
            snapshot = await database_sync_to_async(load_snapshot)()
            # With Redis the counter we compare against is Redis's, not the database's.
            snapshot.version = config_version
            self.snapshot = snapshot
        if self.board.version != quota_version:
            records = await database_sync_to_async(quota.load_records)()
            self.board.records = records
            self.board.version = quota_version

    async def record_failure(
        self, route: Route, failure: Failure, config: ProxyConfig
    ) -> QuotaRecord | None:
        self.counters.failures[route.credential_id] += 1
        if not failure.counts_against_credential:
            return None
        persist = partial(
            quota.persist_failure,
            route.credential_id,
            route.upstream_model,
            failure,
            time.time(),
            transient_seconds=config.transient_error_cooldown_seconds,
            cooling_disabled=config.cooling_disabled_for(route.credential),
        )
        scope = "" if failure.credential_wide else route.upstream_model
        if not self.store.down:
            try:
                record = await database_sync_to_async(persist)()
            except DatabaseFailure as exc:
                self.store.failed(exc)
            else:
                if record is not None:
                    self.board.put(route.credential_id, scope, record)
                return record
        # The database is away: cool the credential down in this worker now, and write the
        # same failure (its own time) when the database is back.
        record = apply_failure(
            self.board.get(route.credential_id, scope),
            failure,
            persist.args[3],
            transient_seconds=config.transient_error_cooldown_seconds,
            cooling_disabled=config.cooling_disabled_for(route.credential),
        )
        if record is not None:
            self.board.put(route.credential_id, scope, record)
        self.store.owe(persist)
        return record

    async def record_success(self, route: Route) -> None:
        self.counters.successes[route.credential_id] += 1
        # Only the first success after a failure writes: it clears that model's state.
        if self.board.get(route.credential_id, route.upstream_model) is not None:
            self.board.put(route.credential_id, route.upstream_model, None)
            persist = partial(quota.persist_success, route.credential_id, route.upstream_model)
            await self.write(persist)

    async def learn_omission(self, route: Route, field_name: str, excerpt: str) -> None:
        """Remember that ``route``'s server refuses ``field_name`` (``excerpt``: its redacted
        error): at once in this worker, and in the database for the others and for restarts."""
        route.credential.omitted.add(field_name)
        try:
            await database_sync_to_async(omissions.remember)(
                route.credential_id, field_name, excerpt, time.time()
            )
        except Exception:
            # This worker still omits the field; another one will relearn it with one more retry.
            logger.exception(
                "could not record that %s refuses %s", route.credential.label, field_name
            )

    def key_used(self, key_id: int) -> None:
        self.counters.keys_used[key_id] = time.time()

    async def flush(self) -> None:
        await self._flush_ledger()
        if not self.counters.pending:
            self.counters.flushed_at = time.monotonic()
            return
        drained = self.counters.drain()
        if self.store.down:
            self.counters.restore(drained)  # written once the database is back
            return
        try:
            successes, failures, keys_used, skips = drained
            await off_path(quota.flush_counters)(
                successes, failures, keys_used, time.time(), skips=skips
            )
            if self.counters.flushes % 100 == 1:
                await off_path(quota.prune_traces)(time.time())
                await off_path(usage.prune)()
                if not settings.REDIS_URL:
                    await off_path(limiter.prune_database)()
        except DatabaseFailure as exc:
            self.store.failed(exc)
            self.counters.restore(drained)
        except Exception:
            logger.exception("could not flush request counters")

    async def _flush_ledger(self) -> None:
        batch = self.ledger.drain()
        if not batch:
            return
        if self.store.down:
            self.ledger.put_back(batch)  # written once the database is back
            return
        try:
            await off_path(usage.write)(batch)
        except Exception as exc:
            # Kept for the next flush: a database hiccup must not lose the ledger.
            if isinstance(exc, DatabaseFailure):
                self.store.failed(exc)
            else:
                logger.exception("could not write %d usage records", len(batch))
            self.ledger.put_back(batch)

    async def write(self, write: Callable[[], object], *, waited_on: bool = True) -> None:
        """A bookkeeping write (sync, on a worker thread); owed for later while the database
        is away, so it is never lost and never makes a request fail. ``waited_on=False``: no
        request awaits it, so it queues on the bookkeeping thread behind the flush."""
        if self.store.down:
            self.store.owe(write)
            return
        runner = database_sync_to_async if waited_on else off_path
        try:
            await runner(write)()
        except DatabaseFailure as exc:
            self.store.failed(exc)
            self.store.owe(write)

    def start_flush_timer(self) -> None:
        """Flush the counters every ``STATS_FLUSH_SECONDS`` whether or not requests arrive, so
        the admin's figures are right within seconds of the last request (the server calls
        this once its event loop runs)."""
        if self._flush_timer is None or self._flush_timer.done():
            # A fresh context: the timer outlives the request that happened to start it. The
            # event loop, not the running one: daphne starts this before its loop runs.
            self._flush_timer = asyncio.get_event_loop().create_task(
                self._flush_periodically(), context=contextvars.Context()
            )

    def start_refresh_timer(self) -> None:
        """Check for changes every ``POOL_REFRESH_SECONDS`` in the background, so that requests
        never wait on the check (with ``POOL_REFRESH_SECONDS`` 0, every request checks first).

        A check awaited by a request cost that request a thread hop and a database connection
        (about 1 ms): every request of a client that sends one less often than the interval."""
        if settings.POOL_REFRESH_SECONDS <= 0:
            return
        if self._refresh_timer is None or self._refresh_timer.done():
            self._refresh_timer = asyncio.get_event_loop().create_task(
                self._refresh_periodically(), context=contextvars.Context()
            )

    async def _refresh_periodically(self) -> None:
        while True:
            await asyncio.sleep(settings.POOL_REFRESH_SECONDS)
            if self.snapshot is None:
                continue  # loaded by the first request, which needs it anyway
            if self.store.down and time.monotonic() - self._checked_at < RETRY_SECONDS:
                continue
            try:
                await self.refresh()
            except Exception:
                logger.exception("could not check the pool for changes")

    async def _flush_periodically(self) -> None:
        while True:
            await asyncio.sleep(settings.STATS_FLUSH_SECONDS)
            if self.store.down and self.snapshot is not None:
                await self.refresh()  # back? then it writes what is owed, then the counters
            await self.flush()
            if not self.store.down:
                # Accounts are renewed ahead of expiry, and their windows polled (when that is
                # on), even while no request comes in.
                tokens.maybe_sweep(self.spawn)
                usage_poll.maybe_poll(self.spawn)

    async def shutdown(self) -> None:
        """At server shutdown, after open requests were ended: let their bookkeeping finish
        (routing traces, cooldown writes) and write every counter still in memory."""
        for timer in (self._flush_timer, self._refresh_timer):
            if timer is not None:
                timer.cancel()
        self._flush_timer = self._refresh_timer = None
        await self.settle()
        await self.flush()
        await self.settle()

    def spawn(self, coroutine: Coroutine) -> None:
        """Run bookkeeping off the request path; keep a reference so it is not collected."""
        task = asyncio.ensure_future(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def settle(self) -> None:
        """Wait for background bookkeeping (tests, shutdown)."""
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)


pool = Pool()
