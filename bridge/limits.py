"""Every size bound the bridge enforces, in one place, so each is configurable and named in errors."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from .errors import LimitExceededError, ValidationError

NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")
ID_RE = re.compile(r"var_[0-9a-f]{24}")
_ID_LENGTH = 28


def is_id(ref: str) -> bool:
    """Whether `ref` has the form of a variable ID; the length test spares most names the regex."""
    return len(ref) == _ID_LENGTH and ID_RE.fullmatch(ref) is not None


#: Deepest nesting any value may have, whatever the configuration (protobuf's parser stops near 100).
HARD_MAX_NESTING = 64


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on what one request or one session may hold."""

    max_message_bytes: int = 96 * 1024 * 1024  # room for a 64 MiB tensor plus envelope
    max_name_length: int = 128
    max_batch_size: int = 10_000
    max_variables_per_session: int = 100_000
    max_sessions: int = 10_000
    max_history_per_variable: int = 1_000
    max_history_bytes: int = 64 * 1024 * 1024  # per variable; the current version is always kept
    max_history_age_seconds: float = 0.0  # versions older than this are dropped (0: kept whatever their age)
    max_list_items: int = 1_000_000
    max_nesting_depth: int = 32
    max_metadata_entries: int = 64
    max_pattern_length: int = 256
    max_access_rules: int = 64
    max_dependencies: int = 256
    max_optimization_iterations: int = 100_000  # per run: bounds its history
    max_optimization_runs: int = 100  # retained per variable, with their histories; older ones are forgotten
    max_live_optimizations: int = 64  # running at once per session
    max_lease_ttl: float = 3600.0  # seconds a run may go without a renewing call
    max_trial_bytes: int = 16 * 1024  # one iteration's metrics, candidate and error text
    max_optimization_history_bytes: int = 64 * 1024 * 1024  # all iterations of one run
    max_optimization_waits: int = 256  # WaitOptimization calls parked at once per session
    max_event_log_entries: int = 10_000  # writes each session's event log keeps for resuming watches
    max_event_log_bytes: int = 64 * 1024 * 1024  # per session, values and metadata; the latest write is always kept
    max_watches_per_session: int = 1_000  # open watch streams one session opens (on its own or others' variables)
    max_watches: int = 10_000  # open watch streams on the server
    max_watch_refs: int = 10_000  # variables one watch names
    max_watch_buffer: int = 1_000  # writes a watcher may fall behind before its stream ends (it resumes)
    max_invalidation_streams_per_session: int = 1_000  # open cache-invalidation streams on one session
    max_invalidation_streams: int = 10_000  # open cache-invalidation streams on the server
    max_tracked_variables: int = 10_000  # refs one invalidation stream tracks (beyond: the oldest is dropped)
    max_export_chunk_bytes: int = 256 * 1024  # one message of an export/import stream (a bigger item: alone)
    max_import_bytes: int = 1024 * 1024 * 1024  # all messages of one import stream together

    def __post_init__(self) -> None:
        if not 1 <= self.max_nesting_depth <= HARD_MAX_NESTING:
            raise ValueError(f"max_nesting_depth must be between 1 and {HARD_MAX_NESTING}")
        if self.max_history_per_variable < 1 or self.max_history_bytes < 1:
            raise ValueError("history retention keeps at least the current version: versions and bytes must be >= 1")
        if not 0 <= self.max_history_age_seconds < float("inf"):
            raise ValueError(f"max_history_age_seconds must be >= 0 (0: no limit), got {self.max_history_age_seconds}")


DEFAULT_LIMITS = Limits()


def check_name(name: object, what: str = "variable name", limits: Limits = DEFAULT_LIMITS) -> str:
    """Names are identifiers so they are safe in logs, globs and URLs; IDs' form is reserved."""
    if not isinstance(name, str):
        raise ValidationError(f"{what} must be a string, got {type(name).__name__}", rule="name_type")
    if not name:
        raise ValidationError(f"{what} must not be empty", rule="name_empty")
    if len(name) > limits.max_name_length:
        raise LimitExceededError(
            f"{what} {name[:32]!r}... is {len(name)} characters; the limit is {limits.max_name_length}",
            rule="max_name_length",
            limit=limits.max_name_length,
        )
    if not NAME_RE.fullmatch(name):
        raise ValidationError(
            f"{what} {name[:60]!r} is invalid: use letters, digits, '_', '.', '-', starting with a letter or '_'",
            variable=name[:60],
            rule="name_pattern",
        )
    if is_id(name):
        raise ValidationError(f"{what} {name!r} has the form of a variable ID, which is reserved", rule="name_reserved")
    return name


def check_ref(ref: object, limits: Limits = DEFAULT_LIMITS) -> str:
    """A variable reference: an ID, or else a valid name (so echoing it in errors is safe)."""
    if isinstance(ref, str) and is_id(ref):
        return ref
    return check_name(ref, "variable name", limits)


def check_count(count: int, limit: int, what: str, rule: str) -> None:
    if count > limit:
        raise LimitExceededError(f"{what}: {count} exceeds the limit of {limit}", rule=rule, limit=limit)


def channel_options(max_message_bytes: int = DEFAULT_LIMITS.max_message_bytes) -> list[tuple[str, int]]:
    """gRPC options that let a channel or server carry messages up to the bridge's limit."""
    return [
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.max_receive_message_length", max_message_bytes),
    ]


def check_string_map(
    mapping: Mapping[str, str], max_entries: int, max_chars: int, what: str, var: str, rule: str
) -> None:
    """A small map of strings (rule conditions, edge metadata): bounded in entries and in each key and value."""
    check_count(len(mapping), max_entries, f"{var}: {what} entries", rule)
    for key, value in mapping.items():
        if len(key) > max_chars or len(value) > max_chars:
            raise ValidationError(
                f"{var}: {what} keys and values are at most {max_chars} characters", variable=var, rule=rule
            )
