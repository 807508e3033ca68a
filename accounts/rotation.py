"""Which credential serves the next attempt: pure selection policy plus its per-process state.

The caller hands in the candidates that are available right now (enabled, serving the model,
not cooling down, not yet tried in this round). Selection then:
1. keeps only the highest priority tier;
2. honours a session binding (session affinity), wherever its tier;
3. otherwise applies the strategy: round-robin, fill-first, smooth weighted round-robin, or
   quota-aware (the candidate with the most left of its binding subscription window; those
   within QUOTA_TIE of the best take turns, so equal accounts drain evenly).

Sessions without a binding yet are placed by rendezvous hashing, so every worker process puts a
new session on the same credential without sharing any state.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

ROUND_ROBIN = "round-robin"
FILL_FIRST = "fill-first"
WEIGHTED_ROUND_ROBIN = "weighted-round-robin"
QUOTA_AWARE = "quota-aware"
# Headroom differences smaller than this are a tie (utilization is reported in coarse steps).
QUOTA_TIE = 0.02
MAX_WEIGHT = 1_000_000
# Bounded so a client cycling through random model names cannot grow memory without limit.
MAX_TRACKED_KEYS = 4096


class Candidate(Protocol):
    @property
    def credential_id(self) -> int: ...

    @property
    def priority(self) -> int: ...

    @property
    def weight(self) -> int: ...


C = TypeVar("C", bound=Candidate)


def top_tier(candidates: Sequence[C]) -> list[C]:
    """The candidates of the highest priority, ordered by credential id."""
    if not candidates:
        return []
    best = max(c.priority for c in candidates)
    return sorted((c for c in candidates if c.priority == best), key=lambda c: c.credential_id)


def rendezvous_pick(candidates: Sequence[C], session_id: str) -> C:
    """Highest-random-weight hashing: stable per session, and only the sessions of a credential
    that disappears move elsewhere."""

    def score(candidate: C) -> bytes:
        return hashlib.blake2b(
            f"{session_id}\x00{candidate.credential_id}".encode(), digest_size=8
        ).digest()

    return max(candidates, key=score)


class SmoothWeighted:
    """nginx's smooth weighted round-robin for one key: exact shares, evenly interleaved."""

    __slots__ = ("current", "weights")

    def __init__(self) -> None:
        self.weights: tuple[tuple[int, int], ...] = ()
        self.current: dict[int, int] = {}

    def pick(self, candidates: Sequence[C]) -> C | None:
        weighted = [c for c in candidates if c.weight > 0]
        if not weighted:
            return None
        signature = tuple((c.credential_id, min(c.weight, MAX_WEIGHT)) for c in weighted)
        if signature != self.weights:
            # The set or the weights changed: start over so shares stay exact.
            self.weights, self.current = signature, {}
        total = 0
        best: C | None = None
        for candidate in weighted:
            weight = min(candidate.weight, MAX_WEIGHT)
            total += weight
            value = self.current.get(candidate.credential_id, 0) + weight
            self.current[candidate.credential_id] = value
            if best is None or value > self.current[best.credential_id]:
                best = candidate
        assert best is not None
        self.current[best.credential_id] -= total
        return best


@dataclass(slots=True)
class _Binding:
    credential_id: int
    expires_at: float


class Selector:
    """Selection state of one worker process: cursors, weighted state, session bindings."""

    def __init__(self) -> None:
        self._cursors: OrderedDict[str, int] = OrderedDict()
        self._weighted: OrderedDict[str, SmoothWeighted] = OrderedDict()
        self._bindings: OrderedDict[str, _Binding] = OrderedDict()

    def next_cursor(self, key: str) -> int:
        """A per-key counter, advanced once per request (not per attempt)."""
        value = self._cursors.pop(key, -1) + 1
        self._cursors[key] = value if value < 2_000_000_000 else 0
        _trim(self._cursors)
        return value

    def pick(
        self,
        available: Sequence[C],
        *,
        strategy: str,
        key: str,
        cursor: int,
        session_id: str | None = None,
        now: float | None = None,
        headroom: Callable[[int, float], float] | None = None,
    ) -> C | None:
        """One candidate among ``available`` (already filtered), or None if there is none.
        ``headroom(credential_id, now)``: 0..1 left of its binding window (quota-aware)."""
        if not available:
            return None
        if session_id:
            bound = self.bound_credential(key, session_id, now)
            for candidate in available:
                if candidate.credential_id == bound:
                    return candidate
        if strategy == WEIGHTED_ROUND_ROBIN:
            available = [c for c in available if c.weight > 0]  # weight <= 0 excludes
            if not available:
                return None
        tier = top_tier(available)
        if session_id:
            return rendezvous_pick(tier, session_id)
        if strategy == FILL_FIRST:
            return tier[0]
        if strategy == QUOTA_AWARE and headroom is not None and len(tier) > 1:
            moment = time.time() if now is None else now
            left = {c.credential_id: headroom(c.credential_id, moment) for c in tier}
            best = max(left.values())
            tier = [c for c in tier if left[c.credential_id] >= best - QUOTA_TIE]
        if strategy == WEIGHTED_ROUND_ROBIN:
            state = self._weighted.get(key)
            if state is None:
                state = self._weighted[key] = SmoothWeighted()
                _trim(self._weighted)
            else:
                # Least recently used goes first when trimming, not a busy model's state.
                self._weighted.move_to_end(key)
            return state.pick(tier)
        return tier[cursor % len(tier)]

    # Session affinity -------------------------------------------------------------------

    def bound_credential(self, key: str, session_id: str, now: float | None = None) -> int | None:
        binding = self._bindings.get(f"{key}\x00{session_id}")
        if binding is None:
            return None
        if binding.expires_at <= (time.time() if now is None else now):
            self._bindings.pop(f"{key}\x00{session_id}", None)
            return None
        return binding.credential_id

    def bind(self, key: str, session_id: str, credential_id: int, ttl: float, now: float) -> None:
        name = f"{key}\x00{session_id}"
        self._bindings.pop(name, None)
        self._bindings[name] = _Binding(credential_id, now + ttl)
        _trim(self._bindings, limit=MAX_TRACKED_KEYS * 16)

    def unbind(self, key: str, session_id: str) -> None:
        self._bindings.pop(f"{key}\x00{session_id}", None)


def _trim(mapping: OrderedDict, limit: int = MAX_TRACKED_KEYS) -> None:
    while len(mapping) > limit:
        mapping.popitem(last=False)
