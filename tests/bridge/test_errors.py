"""The one error table: each kind maps to one class and code, both ways, and survives the wire."""

from __future__ import annotations

import pickle

import grpc
import pytest

from bridge import errors
from bridge.errors import CODE_FALLBACK, ERROR_TABLE, BridgeError, error_for

BUILTIN = {
    "variable_not_found": KeyError,
    "session_not_found": KeyError,
    "validation_error": ValueError,
    "constraint_violation": ValueError,
    "unknown_type": ValueError,
    "variable_exists": ValueError,
    "precondition_failed": ValueError,
    "limit_exceeded": ValueError,
    "type_mismatch": TypeError,
    "access_denied": PermissionError,
    "authentication_failed": PermissionError,
    "revision_compacted": LookupError,
    "watch_overflow": BridgeError,  # handled inside the watching client, which resumes
    "store_unavailable": BridgeError,  # the host's store is down: retry later
}


@pytest.mark.parametrize("kind", sorted(ERROR_TABLE))
def test_each_kind_round_trips_through_the_table(kind: str) -> None:
    cls, code = ERROR_TABLE[kind]
    rebuilt = error_for(kind, code, "msg", {"variable": "v"})
    assert type(rebuilt) is cls
    assert isinstance(rebuilt, BUILTIN[kind])
    assert str(rebuilt) == "msg" and rebuilt.details == {"variable": "v"}


def test_every_error_class_is_in_the_table() -> None:
    classes = {obj for obj in vars(errors).values() if isinstance(obj, type) and issubclass(obj, BridgeError)}
    classes.discard(BridgeError)
    assert classes == {cls for cls, _ in ERROR_TABLE.values()}
    assert set(BUILTIN) == set(ERROR_TABLE)


def test_codes_without_detail_fall_back_and_transport_codes_do_not_map() -> None:
    for code, cls in CODE_FALLBACK.items():
        assert type(error_for("", code, "m", {})) is cls
    for code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.INTERNAL):
        assert error_for("", code, "m", {}) is None


def test_key_errors_print_their_message_not_a_repr() -> None:
    assert str(errors.VariableNotFoundError("variable 'x' not found")) == "variable 'x' not found"


def test_errors_pickle_with_their_details() -> None:
    exc = errors.ConstraintViolationError("too big", variable="t", rule="max")
    back = pickle.loads(pickle.dumps(exc))
    assert type(back) is type(exc) and back.details == exc.details and str(back) == "too big"
