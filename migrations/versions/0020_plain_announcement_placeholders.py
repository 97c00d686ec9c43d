"""Announcement templates name their placeholders plainly: `{number}`, `{counter}`, `{place}`.

`next` fills the ticket number into the words inside its one statement, which can only put the
number where a plain `{number}` stood; the branch settings now refuse a format spec, conversion
or index (`{number:>6}`, `{place!r}`, `{number[0]}`), and this rewrites stored templates that
have one to the plain placeholder (`{number:*>6}` -> `{number}`: the number as it is written,
without the padding). Literal braces (`{{`, `}}`) stay. docs/announcements.md.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-04
"""

from collections.abc import Sequence
from string import Formatter

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def plain(template: str) -> str:
    """`template` with every placeholder reduced to its name (the validation let only
    `number`, `counter` and `place` in, with or without a spec, conversion or index)."""
    parts = []
    for literal, field, _spec, _conversion in Formatter().parse(template):
        parts.append(literal.replace("{", "{{").replace("}", "}}"))
        if field is not None:
            name = field.split(".", 1)[0].split("[", 1)[0]
            parts.append("{" + name + "}")
    return "".join(parts)


def upgrade() -> None:
    bind = op.get_bind()
    rows = bind.execute(
        sa.text(
            "SELECT code, announcement_zh, announcement_en FROM branches"
            " WHERE announcement_zh IS NOT NULL OR announcement_en IS NOT NULL"
        )
    ).all()
    for code, zh, en in rows:
        new_zh, new_en = (plain(t) if t is not None else None for t in (zh, en))
        if (new_zh, new_en) != (zh, en):
            bind.execute(
                sa.text(
                    "UPDATE branches SET announcement_zh = :zh, announcement_en = :en"
                    " WHERE code = :code"
                ),
                {"zh": new_zh, "en": new_en, "code": code},
            )


def downgrade() -> None:
    # The plain templates are valid before this revision too; the format specs are not kept.
    pass
