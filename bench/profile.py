"""Summaries of py-spy's raw (collapsed-stack) profiles: where a server process spends its CPU.

    python -m bench.profile bench/results/last-run/profile-B1.txt

Each line of the file is `frame;frame;...;frame count`, a frame being `function (file:line)`.
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from pathlib import Path

# Inclusive time by layer: the first matching pattern of a stack's frames, from the leaf up.
LAYERS = [
    ("asyncpg (protocol, encoding)", re.compile(r"asyncpg/")),
    ("SQLAlchemy (ORM, compiling, result rows)", re.compile(r"sqlalchemy/")),
    ("pydantic (validation, serialisation)", re.compile(r"pydantic(_core)?/")),
    ("JSON encoding", re.compile(r"json/|orjson")),
    ("FastAPI / Starlette (routing, dependencies)", re.compile(r"fastapi/|starlette/")),
    ("uvicorn / httptools (HTTP)", re.compile(r"uvicorn/|httptools")),
    ("logging", re.compile(r"logging/")),
    ("hallq (app/)", re.compile(r"/app/")),
]
_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^:()]+)(?::\d+)?\)$")


def _layer(frames: list[str]) -> str:
    """The innermost frame that belongs to a known layer names the sample's layer."""
    for frame in reversed(frames):
        for label, pattern in LAYERS:
            if pattern.search(frame):
                return label
    return "other (event loop, interpreter)"


def summarize(path: Path, top: int = 12) -> list[str]:
    self_time: Counter[str] = Counter()
    layers: Counter[str] = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        count = int(count_text)
        if not stack.strip():
            continue  # a sample with no Python frame (py-spy could not read the stack)
        frames = stack.split(";")
        total += count
        leaf = frames[-1]
        match = _FRAME.match(leaf)
        name = leaf
        if match:
            short = "/".join(match["file"].split("/")[-2:])
            name = f"{match['func']} ({short})"
        self_time[name] += count
        layers[_layer(frames)] += count
    if not total:
        return [f"{path.name}: no samples"]
    lines = [f"{path.name}: {total} samples"]
    lines.append("  by layer (innermost library on the stack):")
    for label, count in layers.most_common():
        lines.append(f"    {100 * count / total:5.1f}%  {label}")
    lines.append("  hottest functions (self time):")
    for name, count in self_time.most_common(top):
        lines.append(f"    {100 * count / total:5.1f}%  {name[:110]}")
    return lines


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        print("\n".join(summarize(Path(arg))))
