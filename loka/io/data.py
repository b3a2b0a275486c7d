"""Loading user data: JSONL fact and passage files, validated record by record.

Facts, one JSON object per line: ``{"prompt": "...", "answer": "...", "subject": "...",
"attribute": "...", "template": "..."}`` (all but prompt and answer optional). ``template``
names the question form: ``train`` (the default: what unlearning methods see), or any other
name for forms only the verifier asks — ``heldout`` (a paraphrase no method saw), ``reverse``
(the answer given, the subject asked). Passages: ``{"text": "..."}``. A malformed, oversized or
wrong-typed record is refused with its line number; nothing is half-loaded.

>>> facts = load_facts("forget.jsonl")          # doctest: +SKIP
>>> facts[0].prompt, facts[0].answer            # doctest: +SKIP
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from loka.errors import DataError

MAX_FILE_BYTES = 256 * 1024 * 1024
MAX_FIELD_CHARS = 20_000
MAX_RECORDS = 1_000_000


@dataclass(frozen=True)
class FactRecord:
    """One fact: the model should continue ``prompt`` with ``" " + answer``."""

    prompt: str
    answer: str
    subject: str = ""
    attribute: str = ""
    template: str = ""  # "" or "train": a training form; anything else only the verifier asks

    @property
    def kind(self) -> str:
        """The template family: ``train`` for the forms methods may see."""
        return self.template or "train"

    def to_json(self) -> dict[str, str]:
        out = {"prompt": self.prompt, "answer": self.answer, "subject": self.subject,
               "attribute": self.attribute}
        return out | ({"template": self.template} if self.template else {})


def _read_lines(path: str | Path) -> list[tuple[int, str]]:
    p = Path(path).expanduser()
    if not p.is_file():
        raise DataError(f"{p}: no such file" if not p.exists() else f"{p}: not a regular file")
    size = p.stat().st_size
    if size > MAX_FILE_BYTES:
        raise DataError(f"{p}: {size} bytes is over the {MAX_FILE_BYTES}-byte limit for a data file")
    try:
        text = p.read_text(encoding="utf-8-sig")  # a leading byte-order mark is allowed
    except UnicodeDecodeError as exc:
        raise DataError(f"{p}: not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    # JSON Lines breaks on "\n" only: str.splitlines() would also split inside strings that hold
    # U+0085 or U+2028, which json.dumps(ensure_ascii=False) leaves raw.
    lines = [(i, line.rstrip("\r")) for i, line in enumerate(text.split("\n"), start=1) if line.strip()]
    if not lines:
        raise DataError(f"{p}: the file has no records")
    if len(lines) > MAX_RECORDS:
        raise DataError(f"{p}: {len(lines)} records is over the {MAX_RECORDS}-record limit")
    return lines


def _parse(p: str | Path, lineno: int, line: str, required: tuple[str, ...], optional: tuple[str, ...]) -> dict:
    where = f"{p}:{lineno}"
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise DataError(f"{where}: not valid JSON ({exc.msg})") from None
    except (ValueError, RecursionError) as exc:  # a 5000-digit number; nesting 100,000 deep
        reason = "nested too deeply" if isinstance(exc, RecursionError) else "a number too long to read"
        raise DataError(f"{where}: not a fact record ({reason})") from None
    if not isinstance(record, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(record).__name__}")
    unknown = set(record) - set(required) - set(optional)
    if unknown:
        raise DataError(f"{where}: unknown field(s) {sorted(unknown)}; allowed: {list(required + optional)}")
    for key in required:
        if key not in record:
            raise DataError(f"{where}: missing field {key!r}")
    for key, value in record.items():
        if not isinstance(value, str):
            raise DataError(f"{where}: field {key!r} must be a string, got {type(value).__name__}")
        if len(value) > MAX_FIELD_CHARS:
            raise DataError(f"{where}: field {key!r} is {len(value)} characters (limit {MAX_FIELD_CHARS})")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:  # JSON lets "\ud800" through: a lone surrogate is no text
            raise DataError(f"{where}: field {key!r} holds an unpaired surrogate escape "
                            "(like \\ud800); write the character itself") from None
    for key in required:
        if not record[key].strip():
            raise DataError(f"{where}: field {key!r} is empty")
    return record


def load_facts(path: str | Path) -> list[FactRecord]:
    """Fact records from a JSONL file (see the module docstring for the format)."""
    return [FactRecord(**_parse(path, n, line, ("prompt", "answer"), ("subject", "attribute", "template")))
            for n, line in _read_lines(path)]


def load_passages(path: str | Path) -> list[str]:
    """Passage texts from a JSONL file of ``{"text": ...}`` records."""
    return [_parse(path, n, line, ("text",), ())["text"] for n, line in _read_lines(path)]


def write_jsonl(path: str | Path, rows: list[dict]) -> Path:
    """Write ``rows`` as JSON Lines, atomically."""
    from loka.io.atomic import write_text

    return write_text(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
