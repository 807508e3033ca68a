from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import pytest

from accounts import rotation
from accounts.rotation import (
    FILL_FIRST,
    MAX_TRACKED_KEYS,
    ROUND_ROBIN,
    WEIGHTED_ROUND_ROBIN,
    Selector,
    SmoothWeighted,
    rendezvous_pick,
    top_tier,
)

NOW = 1_700_000_000.0


@dataclass(frozen=True)
class Cand:
    credential_id: int
    priority: int = 0
    weight: int = 1


def ids(candidates: list[Cand]) -> list[int]:
    return [c.credential_id for c in candidates]


def picks(
    selector: Selector,
    available: list[Cand],
    n: int,
    *,
    strategy: str,
    key: str = "claude-x",
    session_id: str | None = None,
) -> list[int]:
    chosen = []
    for _ in range(n):
        pick = selector.pick(
            available,
            strategy=strategy,
            key=key,
            cursor=selector.next_cursor(key),
            session_id=session_id,
            now=NOW,
        )
        assert pick is not None
        chosen.append(pick.credential_id)
    return chosen


# top_tier ---------------------------------------------------------------------------------


def test_it_keeps_only_the_highest_priority_ordered_by_id() -> None:
    candidates = [Cand(5, 1), Cand(3, 2), Cand(9, 2), Cand(1, 0), Cand(2, 2)]
    assert ids(top_tier(candidates)) == [2, 3, 9]


def test_it_handles_negative_priorities_and_no_candidates() -> None:
    assert ids(top_tier([Cand(1, -5), Cand(2, -1)])) == [2]
    assert top_tier([]) == []


# strategies ------------------------------------------------------------------------------


def test_it_round_robins_evenly_over_cursors() -> None:
    available = [Cand(3), Cand(1), Cand(2), Cand(7, priority=-1)]
    chosen = picks(Selector(), available, 300, strategy=ROUND_ROBIN)
    assert chosen[:6] == [1, 2, 3, 1, 2, 3]
    assert Counter(chosen) == {1: 100, 2: 100, 3: 100}


def test_it_uses_the_same_cursor_for_every_attempt_of_a_request() -> None:
    selector = Selector()
    available = [Cand(1), Cand(2), Cand(3)]
    first = selector.pick(available, strategy=ROUND_ROBIN, key="m", cursor=4)
    # The retry passes the same cursor with the failed credential removed.
    rest = [c for c in available if c != first]
    second = selector.pick(rest, strategy=ROUND_ROBIN, key="m", cursor=4)
    assert first is not None and second is not None
    assert first.credential_id != second.credential_id


def test_it_fills_first() -> None:
    available = [Cand(4), Cand(2), Cand(3), Cand(1, priority=-1)]
    assert set(picks(Selector(), available, 50, strategy=FILL_FIRST)) == {2}


def test_it_falls_back_to_round_robin_for_unknown_strategies() -> None:
    chosen = picks(Selector(), [Cand(1), Cand(2)], 4, strategy="nonsense")
    assert chosen == [1, 2, 1, 2]


def test_it_returns_none_without_candidates() -> None:
    for strategy in (ROUND_ROBIN, FILL_FIRST, WEIGHTED_ROUND_ROBIN):
        assert Selector().pick([], strategy=strategy, key="m", cursor=0) is None


def test_it_gives_exact_weighted_shares_over_10000_picks() -> None:
    available = [Cand(1, weight=5), Cand(2, weight=3), Cand(3, weight=2)]
    chosen = picks(Selector(), available, 10_000, strategy=WEIGHTED_ROUND_ROBIN)
    assert Counter(chosen) == {1: 5000, 2: 3000, 3: 2000}


def test_it_interleaves_weighted_picks() -> None:
    available = [Cand(1, weight=5), Cand(2, weight=3), Cand(3, weight=2)]
    chosen = picks(Selector(), available, 1000, strategy=WEIGHTED_ROUND_ROBIN)
    longest, run = 1, 1
    for before, after in zip(chosen, chosen[1:], strict=False):
        run = run + 1 if before == after else 1
        longest = max(longest, run)
    assert longest < 5
    # Every window of 10 picks holds the exact shares (nginx's smoothness).
    for start in range(0, 1000, 10):
        assert Counter(chosen[start : start + 10]) == {1: 5, 2: 3, 3: 2}


def test_it_excludes_weight_zero_and_negative() -> None:
    available = [Cand(1, weight=0), Cand(2, weight=2), Cand(3, weight=-1), Cand(4, weight=1)]
    chosen = picks(Selector(), available, 300, strategy=WEIGHTED_ROUND_ROBIN)
    assert Counter(chosen) == {2: 200, 4: 100}


def test_it_returns_none_when_every_weight_is_zero() -> None:
    selector = Selector()
    assert (
        selector.pick([Cand(1, weight=0)], strategy=WEIGHTED_ROUND_ROBIN, key="m", cursor=0) is None
    )


def test_it_uses_a_lower_tier_when_the_top_tier_has_no_weight() -> None:
    available = [Cand(1, priority=5, weight=0), Cand(2, priority=1, weight=1)]
    assert set(picks(Selector(), available, 5, strategy=WEIGHTED_ROUND_ROBIN)) == {2}


def test_it_weights_only_the_top_tier() -> None:
    available = [Cand(1, 1, weight=1), Cand(2, 1, weight=3), Cand(3, 0, weight=100)]
    chosen = picks(Selector(), available, 400, strategy=WEIGHTED_ROUND_ROBIN)
    assert Counter(chosen) == {1: 100, 2: 300}


def test_it_resets_weighted_state_when_weights_change() -> None:
    state = SmoothWeighted()
    before = [Cand(1, weight=1), Cand(2, weight=1)]
    assert state.pick(before) is not None
    after = [Cand(1, weight=1), Cand(2, weight=3)]
    chosen = [state.pick(after) for _ in range(4)]
    assert state.weights == ((1, 1), (2, 3))
    assert Counter(c.credential_id for c in chosen if c) == {1: 1, 2: 3}


def test_it_resets_weighted_state_when_the_set_changes() -> None:
    state = SmoothWeighted()
    for _ in range(3):
        state.pick([Cand(1, weight=2), Cand(2, weight=1)])
    state.pick([Cand(1, weight=2)])
    assert state.weights == ((1, 2),)
    assert state.current == {1: 0}


def test_it_caps_weights() -> None:
    state = SmoothWeighted()
    state.pick([Cand(1, weight=10**12), Cand(2, weight=1)])
    assert state.weights == ((1, rotation.MAX_WEIGHT), (2, 1))


def test_it_keeps_weighted_state_per_key() -> None:
    selector = Selector()
    available = [Cand(1, weight=1), Cand(2, weight=1)]
    a = picks(selector, available, 2, strategy=WEIGHTED_ROUND_ROBIN, key="a")
    b = picks(selector, available, 2, strategy=WEIGHTED_ROUND_ROBIN, key="b")
    assert a == b == [1, 2]


# rendezvous hashing ----------------------------------------------------------------------


def test_it_places_a_session_stably() -> None:
    candidates = [Cand(1), Cand(2), Cand(3)]
    first = rendezvous_pick(candidates, "session-abc")
    assert all(rendezvous_pick(candidates, "session-abc") == first for _ in range(20))
    # Order of the candidates does not matter.
    assert rendezvous_pick(list(reversed(candidates)), "session-abc") == first


def test_it_spreads_sessions() -> None:
    candidates = [Cand(1), Cand(2), Cand(3)]
    counts = Counter(rendezvous_pick(candidates, f"s-{n}").credential_id for n in range(1000))
    assert set(counts) == {1, 2, 3}
    for count in counts.values():
        assert 250 <= count <= 420


def test_it_moves_only_the_sessions_of_a_removed_credential() -> None:
    candidates = [Cand(1), Cand(2), Cand(3)]
    sessions = [f"s-{n}" for n in range(1000)]
    before = {s: rendezvous_pick(candidates, s).credential_id for s in sessions}
    after = {s: rendezvous_pick([Cand(1), Cand(3)], s).credential_id for s in sessions}
    for session in sessions:
        if before[session] != 2:
            assert after[session] == before[session]
        else:
            assert after[session] in (1, 3)
    moved = [s for s in sessions if before[s] == 2]
    assert {after[s] for s in moved} == {1, 3}


def test_it_places_new_sessions_by_rendezvous_in_the_top_tier() -> None:
    selector = Selector()
    available = [Cand(1, 1), Cand(2, 1), Cand(3, 0)]
    for n in range(50):
        session = f"s-{n}"
        chosen = picks(selector, available, 3, strategy=ROUND_ROBIN, session_id=session)
        expected = rendezvous_pick([Cand(1, 1), Cand(2, 1)], session).credential_id
        assert chosen == [expected] * 3


# session bindings ------------------------------------------------------------------------


def test_it_honours_a_binding_outside_the_top_tier() -> None:
    selector = Selector()
    selector.bind("m", "sess", 3, ttl=3600, now=NOW)
    # Credential 1 (priority 10) recovered; the session stays on 3 for its prompt cache.
    available = [Cand(1, 10), Cand(2, 10), Cand(3, 0)]
    for strategy in (ROUND_ROBIN, FILL_FIRST, WEIGHTED_ROUND_ROBIN):
        assert picks(selector, available, 3, strategy=strategy, key="m", session_id="sess") == [
            3,
            3,
            3,
        ]


def test_it_ignores_a_binding_to_an_unavailable_credential() -> None:
    selector = Selector()
    selector.bind("m", "sess", 9, ttl=3600, now=NOW)
    available = [Cand(1), Cand(2)]
    pick = selector.pick(
        available, strategy=FILL_FIRST, key="m", cursor=0, session_id="sess", now=NOW
    )
    assert pick == rendezvous_pick(available, "sess")
    # The binding is kept for when 9 comes back.
    assert selector.bound_credential("m", "sess", NOW) == 9


def test_it_ignores_an_expired_binding() -> None:
    selector = Selector()
    selector.bind("m", "sess", 3, ttl=60, now=NOW)
    available = [Cand(1, 1), Cand(3, 0)]
    pick = selector.pick(
        available, strategy=ROUND_ROBIN, key="m", cursor=0, session_id="sess", now=NOW + 60
    )
    assert pick == Cand(1, 1)
    assert selector.bound_credential("m", "sess", NOW) is None  # dropped, not just skipped


def test_it_checks_bindings_against_the_clock_by_default() -> None:
    selector = Selector()
    selector.bind("m", "old", 1, ttl=1, now=NOW)  # expired long ago in real time
    assert selector.bound_credential("m", "old") is None
    selector.bind("m", "new", 1, ttl=3600, now=rotation.time.time())
    assert selector.bound_credential("m", "new") == 1


def test_it_keeps_bindings_per_key_and_session() -> None:
    selector = Selector()
    selector.bind("a", "s", 1, ttl=60, now=NOW)
    selector.bind("b", "s", 2, ttl=60, now=NOW)
    selector.bind("a", "t", 3, ttl=60, now=NOW)
    assert selector.bound_credential("a", "s", NOW) == 1
    assert selector.bound_credential("b", "s", NOW) == 2
    assert selector.bound_credential("a", "t", NOW) == 3


def test_it_rebinds_and_unbinds() -> None:
    selector = Selector()
    selector.bind("m", "s", 1, ttl=60, now=NOW)
    selector.bind("m", "s", 2, ttl=60, now=NOW)
    assert selector.bound_credential("m", "s", NOW) == 2
    selector.unbind("m", "s")
    assert selector.bound_credential("m", "s", NOW) is None
    selector.unbind("m", "never-bound")  # no error


def test_it_ignores_bindings_without_a_session() -> None:
    selector = Selector()
    selector.bind("m", "", 2, ttl=60, now=NOW)
    pick = selector.pick([Cand(1), Cand(2)], strategy=FILL_FIRST, key="m", cursor=0)
    assert pick == Cand(1)


# cursors and memory ----------------------------------------------------------------------


def test_it_advances_cursors_per_key() -> None:
    selector = Selector()
    assert [selector.next_cursor("a") for _ in range(3)] == [0, 1, 2]
    assert selector.next_cursor("b") == 0
    assert selector.next_cursor("a") == 3


def test_it_wraps_a_cursor_before_it_grows_large() -> None:
    selector = Selector()
    selector._cursors["a"] = 1_999_999_998
    assert selector.next_cursor("a") == 1_999_999_999
    assert selector.next_cursor("a") == 2_000_000_000
    assert selector._cursors["a"] == 0
    assert selector.next_cursor("a") == 1


def test_it_bounds_the_cursor_map() -> None:
    selector = Selector()
    for n in range(MAX_TRACKED_KEYS + 100):
        selector.next_cursor(f"model-{n}")
    assert len(selector._cursors) == MAX_TRACKED_KEYS
    assert "model-0" not in selector._cursors
    assert f"model-{MAX_TRACKED_KEYS + 99}" in selector._cursors


def test_it_keeps_a_busy_cursor_when_trimming() -> None:
    selector = Selector()
    selector.next_cursor("busy")
    for n in range(MAX_TRACKED_KEYS + 10):
        selector.next_cursor(f"model-{n}")
        if n % 100 == 0:
            selector.next_cursor("busy")
    assert "busy" in selector._cursors


def test_it_keeps_busy_weighted_state_when_trimming() -> None:
    selector = Selector()
    available = [Cand(1, weight=2), Cand(2, weight=1)]
    busy = picks(selector, available, 1, strategy=WEIGHTED_ROUND_ROBIN, key="busy")
    state = selector._weighted["busy"]
    for n in range(MAX_TRACKED_KEYS + 10):
        selector.pick(available, strategy=WEIGHTED_ROUND_ROBIN, key=f"k{n}", cursor=0)
        if n % 100 == 0:
            busy += picks(selector, available, 1, strategy=WEIGHTED_ROUND_ROBIN, key="busy")
    assert selector._weighted.get("busy") is state  # never evicted and started over
    busy += picks(selector, available, 3 - len(busy) % 3, strategy=WEIGHTED_ROUND_ROBIN, key="busy")
    assert Counter(busy) == {1: len(busy) * 2 // 3, 2: len(busy) // 3}


def test_it_bounds_weighted_state_and_bindings() -> None:
    selector = Selector()
    available = [Cand(1, weight=1)]
    for n in range(MAX_TRACKED_KEYS + 5):
        selector.pick(available, strategy=WEIGHTED_ROUND_ROBIN, key=f"k{n}", cursor=0)
    assert len(selector._weighted) == MAX_TRACKED_KEYS
    limit = MAX_TRACKED_KEYS * 16
    for n in range(limit + 5):
        selector.bind("m", f"s{n}", 1, ttl=60, now=NOW)
    assert len(selector._bindings) == limit
    assert selector.bound_credential("m", "s0", NOW) is None
    assert selector.bound_credential("m", f"s{limit + 4}", NOW) == 1


@pytest.mark.parametrize("strategy", [ROUND_ROBIN, FILL_FIRST, WEIGHTED_ROUND_ROBIN])
def test_it_picks_only_from_available_candidates(strategy: str) -> None:
    available = [Cand(2, weight=1)]
    assert picks(Selector(), available, 3, strategy=strategy) == [2, 2, 2]
