"""The history checker catches each property it claims to check, on small hand-made histories."""

from __future__ import annotations

import pytest
from history_checker import Call, Update, Version, check, check_watch


def v(*values: int, revisions: list[int] | None = None) -> list[Version]:
    """A history: version 1 holds the first value (the initial one), each later version the next."""
    revs = revisions or list(range(1, len(values) + 1))
    return [Version(i + 1, value, rev) for i, (value, rev) in enumerate(zip(values, revs, strict=True))]


def w(client: str, start: float, end: float, outcome: str = "ok", **writes: int) -> Call:
    return Call(client, start, end, outcome, writes)  # type: ignore[arg-type]


def r(client: str, start: float, end: float, **reads: int) -> Call:
    return Call(client, start, end, "ok", reads=reads)


#: x: 0 (initial), then 10 and 20; y: 0, then 11. A's atomic batch wrote x=10 and y=11 at revision 3.
GOOD_HISTORY = {"x": v(0, 10, 20, revisions=[1, 3, 4]), "y": v(0, 11, revisions=[2, 3])}
GOOD_CALLS = [
    w("A", 1.0, 2.0, x=10, y=11),  # an atomic batch, revision 3
    r("B", 2.5, 3.0, x=10, y=11),
    w("B", 3.5, 4.0, x=20),
    r("A", 4.5, 5.0, x=20),
]
FINALS = {"x": 20, "y": 11}


def test_a_good_run_passes() -> None:
    assert check(GOOD_HISTORY, GOOD_CALLS, FINALS) == []


def test_a_gap_or_a_repeat_in_versions_is_caught() -> None:
    gap = {**GOOD_HISTORY, "x": [Version(1, 0, 1), Version(2, 10, 3), Version(4, 20, 4)]}
    [problem] = check(gap, GOOD_CALLS, FINALS)
    assert "x: versions are [1, 2, 4]" in problem
    repeat = {**GOOD_HISTORY, "x": [Version(1, 0, 1), Version(2, 10, 3), Version(2, 20, 4)]}
    assert any("x: versions are [1, 2, 2]" in p for p in check(repeat, GOOD_CALLS, FINALS))


def test_a_lost_acknowledged_write_is_caught() -> None:
    lost = {**GOOD_HISTORY, "x": v(0, 10, revisions=[1, 3])}
    problems = check(lost, GOOD_CALLS, {**FINALS, "x": 10})
    assert "x: acknowledged write of 20 by B appears 0 times" in problems


def test_a_duplicated_write_is_caught() -> None:
    twice = {**GOOD_HISTORY, "x": v(0, 10, 20, 20, revisions=[1, 3, 4, 5])}
    problems = check(twice, GOOD_CALLS, FINALS)
    assert "x: acknowledged write of 20 by B appears 2 times" in problems
    unknown = [*GOOD_CALLS[:2], w("B", 3.5, 4.0, "unknown", x=20), GOOD_CALLS[3]]
    assert "x: write of 20 by B (no answer) appears 2 times" in check(twice, unknown, FINALS)


def test_an_unknown_write_may_or_may_not_have_landed() -> None:
    calls = [*GOOD_CALLS, w("C", 6.0, 7.0, "unknown", x=30), w("C", 8.0, 9.0, "unknown", y=31)]
    landed = {**GOOD_HISTORY, "x": v(0, 10, 20, 30, revisions=[1, 3, 4, 5])}
    assert check(landed, calls, {**FINALS, "x": 30}) == []  # x's landed, y's did not: both fine


def test_a_refused_write_that_landed_is_caught() -> None:
    calls = [*GOOD_CALLS, w("C", 6.0, 7.0, "failed", x=30)]
    landed = {**GOOD_HISTORY, "x": v(0, 10, 20, 30, revisions=[1, 3, 4, 5])}
    assert "x: refused write of 30 by C appears 1 times" in check(landed, calls, {**FINALS, "x": 30})


def test_a_value_nobody_wrote_is_caught() -> None:
    phantom = {**GOOD_HISTORY, "x": v(0, 10, 20, 99, revisions=[1, 3, 4, 5])}
    assert "x: version 4 holds 99, which no client wrote" in check(phantom, GOOD_CALLS, {**FINALS, "x": 99})


def test_a_partly_applied_batch_is_caught() -> None:
    half = {**GOOD_HISTORY, "y": v(0, revisions=[2])}
    problems = check(half, [*GOOD_CALLS[:1], GOOD_CALLS[2]], {**FINALS, "y": 0})
    assert any("batch by A was applied in part: ['x'] of ['x', 'y']" in p for p in problems)
    unknown = [w("A", 1.0, 2.0, "unknown", x=10, y=11), GOOD_CALLS[2]]
    assert any("applied in part" in p for p in check(half, unknown, {**FINALS, "y": 0}))


def test_a_batch_over_two_revisions_or_two_calls_in_one_revision_are_caught() -> None:
    split = {"x": v(0, 10, 20, revisions=[1, 3, 4]), "y": v(0, 11, revisions=[2, 5])}
    assert "batch by A was split over revisions [3, 5]" in check(split, GOOD_CALLS, FINALS)
    shared = {"x": v(0, 10, 20, revisions=[1, 3, 3]), "y": v(0, 11, revisions=[2, 3])}
    assert "revision 3 holds the writes of 2 calls" in check(shared, GOOD_CALLS, FINALS)


def test_a_client_reading_back_in_time_is_caught() -> None:
    calls = [*GOOD_CALLS, r("A", 6.0, 7.0, x=10)]  # A saw 20 (version 3), then 10 (version 2)
    problems = check(GOOD_HISTORY, calls, FINALS)
    assert "x: A saw version 2 after version 3" in problems


def test_a_stale_read_after_an_acknowledged_write_is_caught() -> None:
    calls = [*GOOD_CALLS, r("C", 4.2, 4.3, x=10)]  # began after B's write of 20 was acknowledged
    problems = check(GOOD_HISTORY, calls, FINALS)
    assert any(p.startswith("x: C read version 2, older than version 3 that B saw") for p in problems)


def test_writes_out_of_real_time_order_are_caught() -> None:
    calls = [w("A", 1.0, 2.0, x=10, y=11), w("B", 0.1, 0.5, x=20), r("A", 4.5, 5.0, x=20)]
    problems = check(GOOD_HISTORY, calls, FINALS)  # B's write ended before A's began, yet came later
    assert any(p.startswith("x: A wrote version 2, older than version 3 that B saw") for p in problems)


def test_reading_a_value_that_is_in_no_version_or_from_the_future_is_caught() -> None:
    unknown_value = check(GOOD_HISTORY, [*GOOD_CALLS, r("C", 6.0, 7.0, x=55)], FINALS)
    assert "x: C read 55, which is in no version" in unknown_value
    future = check(GOOD_HISTORY, [*GOOD_CALLS, r("C", 3.0, 3.2, x=20)], FINALS)  # B's write began at 3.5
    assert "x: C read 20 before the write of it began" in future


def test_a_final_value_other_than_the_last_version_is_caught() -> None:
    assert "x: the final value is 10, but the last version holds 20" in check(GOOD_HISTORY, GOOD_CALLS, {"x": 10})


def test_values_must_be_unique_to_be_checked() -> None:
    with pytest.raises(ValueError, match="written twice"):
        check(GOOD_HISTORY, [*GOOD_CALLS, w("C", 6.0, 7.0, "failed", x=20)], FINALS)
    with pytest.raises(ValueError, match="also the initial value"):
        check(GOOD_HISTORY, [*GOOD_CALLS, w("C", 6.0, 7.0, "failed", x=0)], FINALS)


# ---------------------------------------------------------------- watchers


def u(variable: str, version: int, old: int, value: int) -> Update:
    return Update(variable, version, value, old)


def test_a_whole_watch_sequence_passes() -> None:
    updates = [u("y", 2, 0, 11), u("x", 2, 0, 10), u("x", 3, 10, 20)]
    assert check_watch(updates, GOOD_HISTORY, {"x": 1, "y": 1}) == []
    assert check_watch(updates[2:], GOOD_HISTORY, {"x": 2}) == []  # a watch that began at version 2


def test_a_watch_gap_a_repeat_a_wrong_old_value_or_falling_short_are_caught() -> None:
    [gap] = check_watch([u("x", 3, 10, 20)], GOOD_HISTORY, {"x": 1})
    assert "x: the watcher got versions [3..3] (1), expected [2..3] (2) (missing [2]" in gap
    [repeat] = check_watch([u("x", 2, 0, 10), u("x", 2, 0, 10), u("x", 3, 10, 20)], GOOD_HISTORY, {"x": 1})
    assert "repeated [2]" in repeat
    [old] = check_watch([u("x", 2, 5, 10), u("x", 3, 10, 20)], GOOD_HISTORY, {"x": 1})
    assert "x: the watcher's version 2 was 5 -> 10, the history's 0 -> 10" in old
    [short] = check_watch([u("x", 2, 0, 10)], GOOD_HISTORY, {"x": 1})
    assert "missing [3]" in short
