"""Who may do what to a variable: its owner everything, other sessions what a matching rule grants.

The owner (the session that registered it) holds every permission, unless a rule's pattern
is exactly the owner's session ID and its conditions hold: then the owner holds only what
such rules grant (a tuned configuration frozen read-only, say, until its expires_at). The
owner may always change the rules.

A rule matches a session when its pattern is "any" or a glob of the session ID and every
condition holds:
- "expires_at": an ISO 8601 time (UTC when it names no zone); the rule holds until then;
- "session_metadata.<key>": the session's metadata (given at InitializeSession) has that key
  with exactly that value.
Any other condition is refused when the rule is set, so a typo never widens access.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from typing import Any

from .._proto import bridge_pb2 as pb
from ..errors import AccessDeniedError, ValidationError
from ..limits import Limits, check_count, check_string_map
from ..store import AccessRuleRecord, VariableRecord

PERMISSIONS = ("read", "write", "observe", "optimize")
EXPIRES_AT = "expires_at"
SESSION_METADATA = "session_metadata."


def needs_metadata(record: VariableRecord) -> bool:
    """Whether deciding for another session needs that session's metadata (most rules don't)."""
    return any(key.startswith(SESSION_METADATA) for rule in record.access_rules for key, _ in rule.conditions)


def _holds(rule: AccessRuleRecord, metadata: Mapping[str, Any] | None, now: float) -> bool:
    for key, value in rule.conditions:
        if key == EXPIRES_AT:
            if now >= _timestamp(value):
                return False
        elif key.startswith(SESSION_METADATA):
            if metadata is None or str(metadata.get(key[len(SESSION_METADATA) :], "\0")) != value:
                return False
        else:  # refused when set; a record from elsewhere with one fails closed
            return False
    return True


def matching_rule(
    record: VariableRecord,
    session_id: str,
    permission: str,
    metadata: Mapping[str, Any] | None = None,
    now: float | None = None,
) -> AccessRuleRecord | None:
    """The first of the variable's rules that grants `permission` to `session_id`, if any."""
    at = time.time() if now is None else now
    for rule in record.access_rules:
        if permission not in rule.permissions:
            continue
        if rule.session_pattern != "any" and not fnmatchcase(session_id, rule.session_pattern):
            continue
        if _holds(rule, metadata, at):
            return rule
    return None


def allowed(
    record: VariableRecord, session_id: str, permission: str, metadata: Mapping[str, Any] | None = None
) -> bool:
    rules = record.access_rules
    if record.session_id == session_id:
        if not rules:  # the commonest case, on every write: no rules at all
            return True
        now = time.time()  # a self-rule whose conditions no longer hold (an expired freeze) restricts nothing
        own = [rule for rule in rules if rule.session_pattern == session_id and _holds(rule, metadata, now)]
        return not own or any(permission in rule.permissions for rule in own)
    return matching_rule(record, session_id, permission, metadata) is not None


def grants_anything(record: VariableRecord, session_id: str, metadata: Mapping[str, Any] | None = None) -> bool:
    """Whether the session holds any permission at all: if not, the variable is not there for it."""
    return record.session_id == session_id or any(
        allowed(record, session_id, permission, metadata) for permission in PERMISSIONS
    )


def check_self_rules(rules: Iterable[AccessRuleRecord], owner: str, var: str) -> None:
    """A rule restricting the owner itself may not depend on session metadata (writes check it without)."""
    for rule in rules:
        if rule.session_pattern == owner and any(key.startswith(SESSION_METADATA) for key, _ in rule.conditions):
            raise ValidationError(
                f"{var}: a rule for the owner session {owner!r} itself may not have session_metadata conditions",
                variable=var,
                rule="access_rules",
            )


def require(
    record: VariableRecord, session_id: str, permission: str, metadata: Mapping[str, Any] | None = None
) -> None:
    if not allowed(record, session_id, permission, metadata):
        raise AccessDeniedError(
            f"session {session_id!r} may not {permission} variable {record.name!r} ({record.id}) "
            f"of session {record.session_id!r}",
            variable=record.name,
            rule=permission,
        )


def _timestamp(text: str) -> float:
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


#: Most conditions one rule may have, and the longest key or value.
MAX_CONDITIONS = 16
MAX_CONDITION_CHARS = 256


def _check_conditions(conditions: Mapping[str, str], var: str) -> None:
    check_string_map(conditions, MAX_CONDITIONS, MAX_CONDITION_CHARS, "access rule condition", var, "access_rules")
    for key, value in conditions.items():
        if key == EXPIRES_AT:
            try:
                _timestamp(value)
            except ValueError:
                raise ValidationError(
                    f"{var}: condition expires_at must be an ISO 8601 time, got {value[:60]!r}",
                    variable=var,
                    rule="access_rules",
                ) from None
        elif not (key.startswith(SESSION_METADATA) and len(key) > len(SESSION_METADATA)):
            raise ValidationError(
                f"{var}: unknown access rule condition {key[:60]!r}; known: 'expires_at', 'session_metadata.<key>'",
                variable=var,
                rule="access_rules",
            )


def parse_rules(rules: Iterable[pb.AccessRule], var: str, limits: Limits) -> tuple[AccessRuleRecord, ...]:
    parsed = []
    for rule in rules:
        if not rule.session_pattern:
            raise ValidationError(f"{var}: an access rule needs a session_pattern", variable=var, rule="access_rules")
        unknown = sorted(set(rule.permissions) - set(PERMISSIONS))
        if unknown:
            raise ValidationError(
                f"{var}: unknown permission(s) {unknown}; allowed: {list(PERMISSIONS)}",
                variable=var,
                rule="access_rules",
            )
        _check_conditions(rule.conditions, var)
        parsed.append(
            AccessRuleRecord(rule.session_pattern, tuple(rule.permissions), tuple(sorted(rule.conditions.items())))
        )
    check_count(len(parsed), limits.max_access_rules, f"{var}: access rules", "max_access_rules")
    return tuple(parsed)
