"""The wire form of an event: the envelope `{type, seq, at, branch, data}` (SPEC §3, §8).

It is built in one place, in SQL (`ENVELOPE_SQL`), by the statement that writes the event and by
every read of the history, so the stream (live or replayed) and notifications send the same
bytes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

# The envelope of a `branch_events` row as JSON text, for a SELECT list or a RETURNING clause.
# `at` is UTC with microseconds. The colons of the time format are quoted literals so that no
# `:name` appears (pgbench, which runs issuing's statement in bench/sql.py, would read a variable).
ENVELOPE_SQL = (
    "json_build_object('type', type, 'seq', seq,"
    ' \'at\', to_char(at AT TIME ZONE \'UTC\', \'YYYY-MM-DD"T"HH24":"MI":"SS.US"Z"\'),'
    " 'branch', branch, 'data', data)::text"
)


@dataclass(frozen=True)
class Notified:
    """What a notification says: an event's envelope, or only where to read it (too large)."""

    branch: str
    seq: int
    envelope: str | None


def parse_notification(payload: str) -> Notified:
    """Raises ValueError for a payload that is neither an envelope nor a reference."""
    fields = json.loads(payload)
    if not isinstance(fields, dict):
        raise ValueError("a notification is a JSON object")
    try:
        branch, seq = fields["branch"], int(fields["seq"])
    except (KeyError, TypeError) as exc:
        raise ValueError("a notification names its branch and seq") from exc
    if not isinstance(branch, str):
        raise ValueError("a notification's branch is a string")
    return Notified(branch, seq, None if fields.get("ref") else payload)


def reference(branch: str, seq: int) -> str:
    """The notification of an event too large to be notified whole: read it from the history."""
    return json.dumps({"branch": branch, "seq": seq, "ref": True}, separators=(",", ":"))
