"""Darknet ``.cfg`` files: sections of ``key=value`` lines, read into a list of dicts with line numbers."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from studio.errors import BadInputError


@dataclass
class Section:
    kind: str
    line: int
    options: dict[str, str] = field(default_factory=dict)
    path: Path | None = None  # the .cfg it came from, for messages

    def _number(self, key: str, text: str, kind: type) -> int | float:
        try:
            value = kind(text)
        except (ValueError, OverflowError):
            raise BadInputError(f"[{self.kind}] at line {self.line}: {key}={text[:40]!r} is not "
                                f"{'an integer' if kind is int else 'a number'}", path=self.path,
                                fix="check the value in the .cfg") from None
        if kind is float and value != value:  # NaN compares unequal to itself
            raise BadInputError(f"[{self.kind}] at line {self.line}: {key} is NaN", path=self.path,
                                fix="check the value in the .cfg")
        return value

    def get_int(self, key: str, default: int) -> int:
        return int(self._number(key, self.options[key], int)) if key in self.options else default

    def get_float(self, key: str, default: float) -> float:
        return float(self._number(key, self.options[key], float)) if key in self.options else default

    def get_ints(self, key: str) -> list[int]:
        return [int(self._number(key, v, int)) for v in self.options.get(key, "").replace(" ", "").split(",") if v]


def parse_cfg(path: Path) -> list[Section]:
    """Parse ``path``; the first section must be ``[net]``. Raises BadInputError with the line number."""
    try:
        text = path.read_text(encoding="utf-8", errors="strict")
    except UnicodeDecodeError as exc:
        raise BadInputError("not a text file (a Darknet .cfg is text)", path=path,
                            fix="give the network's .cfg, with its .weights beside it") from exc
    sections: list[Section] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("[") and line.endswith("]"):
            sections.append(Section(line[1:-1].strip().lower(), number, path=path))
        elif "=" in line and sections:
            key, value = line.split("=", 1)
            sections[-1].options[key.strip()] = value.strip()
        else:
            raise BadInputError(f"line {number} is neither a [section] nor key=value: {line[:60]!r}", path=path,
                                fix="check the file is a Darknet network definition")
    if not sections or sections[0].kind not in ("net", "network"):
        raise BadInputError("a Darknet .cfg starts with a [net] section", path=path,
                            fix="give the network's .cfg, with its .weights beside it")
    return sections
