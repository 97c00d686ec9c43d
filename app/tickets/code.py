"""A ticket's code (SPEC §9): its public key, printed as a QR code on the ticket.

16 characters of a 32-letter alphabet (digits and lower-case letters without i, l, o, u, which
are read as 1, 1, 0, v), drawn by `secrets`: 80 random bits, unguessable, and for a hall's
thousands of tickets a day unique by chance (the unique index is the guard). Tickets from before
the codes (migration 0013) got 20 hex digits (76 random bits). A code is looked up only if it
looks like one; anything else is unknown, as an unknown code is."""

from __future__ import annotations

import re
import secrets

ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
LENGTH = 16
_LOOKS_LIKE_A_CODE = re.compile(r"^[0-9a-z]{12,32}$")


def new_ticket_code() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))


def looks_like_a_code(value: str) -> bool:
    return bool(_LOOKS_LIKE_A_CODE.match(value))
