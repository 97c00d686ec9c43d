"""Codes name branches, business types, counters, staff and notices in URLs, labels and events."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path
from pydantic import StringConstraints

CODE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$"
CODE_RULE = "1-32 characters: letters, digits, '-' or '_', starting with a letter or digit"

Code = Annotated[str, StringConstraints(pattern=CODE_PATTERN, max_length=32)]
BranchCode = Annotated[str, Path(pattern=CODE_PATTERN, max_length=32, description=CODE_RULE)]
ServiceCode = Annotated[str, Path(pattern=CODE_PATTERN, max_length=32, description=CODE_RULE)]
CounterCode = Annotated[str, Path(pattern=CODE_PATTERN, max_length=32, description=CODE_RULE)]
StaffCode = Annotated[str, Path(pattern=CODE_PATTERN, max_length=32, description=CODE_RULE)]
NoticeCode = Annotated[str, Path(pattern=CODE_PATTERN, max_length=32, description=CODE_RULE)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
