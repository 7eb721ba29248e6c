"""Who may do what to a variable: its owner everything, other sessions what its rules grant."""

from __future__ import annotations

from collections.abc import Iterable
from fnmatch import fnmatchcase

from .._proto import bridge_pb2 as pb
from ..errors import AccessDeniedError, ValidationError
from ..limits import Limits, check_count
from ..store import AccessRuleRecord, VariableRecord

PERMISSIONS = ("read", "write", "observe", "optimize")


def allowed(record: VariableRecord, session_id: str, permission: str) -> bool:
    if record.session_id == session_id:
        return True
    return any(
        permission in rule.permissions
        and (rule.session_pattern == "any" or fnmatchcase(session_id, rule.session_pattern))
        for rule in record.access_rules
    )


def require(record: VariableRecord, session_id: str, permission: str) -> None:
    if not allowed(record, session_id, permission):
        raise AccessDeniedError(
            f"session {session_id!r} may not {permission} variable {record.name!r} ({record.id}) "
            f"of session {record.session_id!r}",
            variable=record.name,
            rule=permission,
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
        parsed.append(
            AccessRuleRecord(rule.session_pattern, tuple(rule.permissions), tuple(sorted(rule.conditions.items())))
        )
    check_count(len(parsed), limits.max_access_rules, f"{var}: access rules", "max_access_rules")
    return tuple(parsed)
