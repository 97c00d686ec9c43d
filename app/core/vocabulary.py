"""The fixed vocabularies of the domain (ticket status, priority, channel, counter state, alert
kind) are StrEnums, each defined once in its domain's models.py. Their members are the wire and
database values themselves: `TicketStatus.WAITING == "waiting"`."""

from __future__ import annotations

from collections.abc import Iterable


def sql_list(values: Iterable[str]) -> str:
    """`('a', 'b')`: the values as an SQL list, e.g. for a check constraint's `IN`."""
    quoted = []
    for value in values:
        if "'" in value:
            raise ValueError(f"not a vocabulary value: {value!r}")
        quoted.append(f"'{value}'")
    return f"({', '.join(quoted)})"
