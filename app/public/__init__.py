"""The customer's phone (SPEC §9): the public ticket API keyed by the ticket's code, remote
join, and the per-address limits that guard them (docs/phone.md)."""
