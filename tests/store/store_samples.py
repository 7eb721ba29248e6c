"""Records with every field set to something other than its default, so that a store that drops or
bends a field (one added later included) fails the round-trip tests. `check_every_field_set` fails
first when a record gains a field these samples do not set yet."""

from __future__ import annotations

from typing import NamedTuple

from bridge._proto import bridge_pb2 as pb
from bridge.store import AccessRuleRecord, OptimizationRecord, SessionRecord, StoredValue, TrialRecord, VariableRecord

TARGET = "var_" + "a" * 24


def full_session(session_id: str, now: float) -> SessionRecord:
    return SessionRecord(session_id, "token-hash", now - 3.5, now, 120.0, {"team": "search", "ü": "☃"})


def full_variable(session_id: str, revision: int, now: float) -> VariableRecord:
    head = pb.Value(array_value=pb.NDArray(dtype="float32", shape=[2, 2], framework="torch")).SerializeToString()
    return VariableRecord(
        id="var_" + "f" * 24,
        session_id=session_id,
        name="full",
        type="tensor",
        value=StoredValue(head, b"\x00\x00\x80\x3f" * 4),
        constraints={"shape": [2, 2], "dtype": "float32", "min": -1.5, "nested": {"k": [1, [2.0, None, True]]}},
        metadata={"description": "ü ☃ \u2028", "big": 2**62, "inf": float("inf"), "empty": {}},
        dependencies=(TARGET, "var_" + "b" * 24),
        access_rules=(
            AccessRuleRecord("team_*", ("read", "write"), (("role", "admin"), ("tier", "1"))),
            AccessRuleRecord("*", ("read",)),
        ),
        version=3,
        create_revision=revision,
        mod_revision=revision,
        created_at=now - 5.25,
        updated_at=now,
        updated_by="writer_session",
        last_update_metadata={"reason": "tuned", "n": 7, "scores": [0.5, 1]},
        metadata_bytes=42,
        dependency_kinds=((TARGET, "control", (("weight", "0.5"),)),),
    )


def full_run(session_id: str, variable_id: str, now: float) -> OptimizationRecord:
    return OptimizationRecord(
        id="opt_full",
        session_id=session_id,
        optimizer_type="tpe",
        variable_ids=(variable_id,),
        variable_names=("full",),
        config={"n_startup_trials": 3, "gamma": 0.25},
        max_iterations=50,
        convergence_threshold=0.001,
        direction="minimize",
        metric="loss",
        seed=7,
        state="running",
        started_at=now - 10,
        last_update=now - 1,
        lease_ttl=30.0,
        lease_expires_at=now + 29,
        initial_values={"full": 0.5},
        iteration=4,
        best_candidate={"full": 0.25},
        best_score=0.125,
        best_metrics={"loss": 0.125, "n": 3},
        best_iteration=3,
        candidate={"full": 0.3},
        candidate_iteration=5,
        stop_requested=True,
        error="not yet",
        ended_at=now + 100,
        runner_session_id="runner",
        active_seconds=2.5,
        segment_started_at=now - 5,
        trial_bytes=321,
    )


def full_trial(optimization_id: str, now: float) -> TrialRecord:
    return TrialRecord(
        optimization_id, 4, {"full": 0.3}, None, {"error": "boom", "t": [1, 2]}, now, "boom", "evaluation", 2
    )


def check_every_field_set(record: NamedTuple) -> None:
    """Fails when a field has its default: a new field needs a sample value, and a check that it is stored."""
    defaults = type(record)._field_defaults
    unset = [name for name in record._fields if name in defaults and getattr(record, name) == defaults[name]]
    assert not unset, f"{type(record).__name__} sample leaves {unset} at their defaults: give them values"
