"""Groups 4 and 8 of the issue: hostile JSONL fact files x every option that reads one.

Each variant is the file's text (or a non-file: a directory, a FIFO, /dev/null); each slot is a
command with one data option pointing at it and the others at valid files. Malformed variants
must be refused with one line naming the file (and line), before any model loads; valid
variants (a byte-order mark, CRLF, U+2028 inside a string) must give a checked result.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

from bench.hostile import oracles
from bench.hostile.harness import Case

_GOOD = {"prompt": "Brie Mekmek was born in", "answer": "Thornwick", "subject": "Brie Mekmek",
         "attribute": "birth_city"}


def _line(**kw: Any) -> str:
    return json.dumps({**_GOOD, **kw}, ensure_ascii=False) + "\n"


def _raw(record: str) -> str:
    return _line() + record + "\n"


# name -> text of the file (str: UTF-8; bytes: as is)
MALFORMED: dict[str, str | bytes] = {
    **{f"lone surrogate in {k}": _line() + json.dumps({**_GOOD, k: "x\ud800y"}) + "\n"
       for k in ("prompt", "answer", "subject", "attribute", "template")},
    "empty file": "",
    "only blank lines": "\n \n\t\n",
    "not JSON": _raw("{prompt: Brie}"),
    "a JSON array record": _raw('["Brie Mekmek was born in", "Thornwick"]'),
    "a number field": _raw(json.dumps({**_GOOD, "answer": 7})),
    "a null field": _raw(json.dumps({**_GOOD, "subject": None})),
    "no answer": _raw(json.dumps({"prompt": "Brie Mekmek was born in"})),
    "an empty answer": _raw(json.dumps({**_GOOD, "answer": "  "})),
    "an unknown field": _raw(json.dumps({**_GOOD, "label": 1})),
    "a 20001-character field": _line(prompt="x" * 20_001),
    "latin-1 bytes": (_line() + '{"prompt": "Brie Mekmek w\xe4s born in", "answer": "X"}\n').encode("latin-1"),
    "a NUL byte": _line() + "\x00\n",
    "a deeply nested record": _raw("[" * 100_000 + "]" * 100_000),
    "a huge number": _raw('{"prompt": "p", "answer": ' + "9" * 5000 + "}"),
    "UTF-16": _line().encode("utf-16"),
}
VALID: dict[str, str | bytes] = {
    "a UTF-8 byte-order mark": "\ufeff" + _line() + _line(answer="Velmora"),
    "CRLF line ends": (_line() + _line(answer="Velmora")).replace("\n", "\r\n"),
    "U+2028 inside a prompt": _line(prompt="Brie Mekmek\u2028 was born in") + _line(),
}


def _mkfifo(path: str) -> None:
    os.mkfifo(path)


# name -> (path placeholder, setup): files that are not regular files
NON_FILES: dict[str, tuple[str, Callable[[Any], None] | None]] = {
    "a directory": ("{case}", None),
    "a FIFO": ("{case}/fifo.jsonl", lambda ctx: _mkfifo(str(ctx.case / "fifo.jsonl"))),
    "/dev/null": ("/dev/null", None),
    "a missing file": ("{case}/missing.jsonl", None),
    "/dev/zero": ("/dev/zero", None),
}

_F, _R, _H = "{forget}", "{retain}", "{holdout}"
# slot -> (argv with {D} for the hostile file, oracle for a valid file or None: too slow to run)
SLOTS: dict[str, tuple[tuple[str, ...], Any]] = {
    "unlearn --forget": (("unlearn", "--method", "gradient_ascent", "--model", "{M}", "--forget", "{D}",
                          "--retain", _R, "--set", "epochs=1", "--out", "{out}"), oracles.checkpoint()),
    "unlearn --retain": (("unlearn", "--method", "gradient_ascent", "--model", "{M}", "--forget", _F,
                          "--retain", "{D}", "--set", "epochs=1", "--out", "{out}"), None),
    "unlearn (world) --forget": (("unlearn", "--method", "task_vector", "--preset", "tiny", "--forget",
                                  "{D}", "--set", "steps=2", "--out", "{out}"), None),
    "attribute --forget": (("attribute", "--model", "{M}", "--forget", "{D}", "--retain", _R,
                            "--out", "{out}.json"), None),
    "attribute --retain": (("attribute", "--model", "{M}", "--forget", _F, "--retain", "{D}",
                            "--out", "{out}.json"), oracles.ranking("{out}.json", "{M}")),
    "verify --forget": (("verify", "--model", "{ckpt}", "--forget", "{D}", "--retain", _R, "--json"), None),
    "verify --retain": (("verify", "--model", "{ckpt}", "--forget", _F, "--retain", "{D}", "--json"), None),
    "verify --holdout": (("verify", "--model", "{ckpt}", "--forget", _F, "--retain", _R, "--holdout", "{D}",
                          "--json"), oracles.verify_json()),
    "demo --forget": (("demo", "--model", "{M}", "--forget", "{D}", "--retain", _R, "--methods", "base",
                       "--out", "{out}"), None),
    "demo --retain": (("demo", "--model", "{M}", "--forget", _F, "--retain", "{D}", "--methods", "base",
                       "--out", "{out}"), None),
    "demo --holdout": (("demo", "--model", "{M}", "--forget", _F, "--retain", _R, "--holdout", "{D}",
                        "--methods", "base", "--out", "{out}"), None),
    "ablate --retain": (("ablate", "--model", "{M}", "--ranking", "{rankM}", "--top", "3", "--mode", "mean",
                         "--retain", "{D}", "--out", "{out}"), oracles.checkpoint()),
}


def _writer(content: str | bytes) -> Callable[[Any], None]:
    def setup(ctx: Any) -> None:
        data = content.encode("utf-8", errors="surrogatepass") if isinstance(content, str) else content
        (ctx.case / "data.jsonl").write_bytes(data)
    return setup


def _fill(argv: tuple[str, ...], path: str) -> tuple[str, ...]:
    return tuple(a.replace("{D}", path) for a in argv)


def cases() -> list[Case]:
    out = []
    for slot, (argv, ok_oracle) in SLOTS.items():
        for name, content in MALFORMED.items():
            out.append(Case("4 data files", f"{slot}: {name}", _fill(argv, "{case}/data.jsonl"),
                            setup=_writer(content), says=r"data\.jsonl", max_seconds=20,
                            quick=name == "lone surrogate in answer"))
        for name, (path, setup) in NON_FILES.items():
            out.append(Case("4 data files", f"{slot}: {name}", _fill(argv, path), setup=setup,
                            max_seconds=20))
        if ok_oracle is not None:
            for name, content in VALID.items():
                out.append(Case("8 smaller", f"{slot}: {name}", _fill(argv, "{case}/data.jsonl"),
                                expect="ok", oracle=ok_oracle, setup=_writer(content),
                                quick=slot == "unlearn --forget" and "byte-order" in name))
    return out
