"""Groups 4, 8 and new: option values — settings, seeds, method lists, rankings, devices, counts.

Bad values are refused with one line before any model loads; the odd-but-valid ones (a
duplicated method, a unicode output name) give a checked result.
"""

from __future__ import annotations

import json
import os
from typing import Any

from bench.hostile import oracles
from bench.hostile.harness import Case

_DATA = ("--model", "{M}", "--forget", "{forget}", "--retain", "{retain}")
_UNLEARN = ("unlearn", "--method", "gradient_ascent", *_DATA, "--out", "{out}")
_ABLATE = ("ablate", "--model", "{M}", "--ranking", "{rankM}", "--out", "{out}")

BAD_SETTINGS: list[tuple[str, str]] = [  # method, --set value
    ("gradient_ascent", "lr=nan"), ("gradient_ascent", "lr=inf"), ("gradient_ascent", "lr=1e400"),
    ("gradient_ascent", "lr=-1"), ("gradient_ascent", "lr=0"), ("gradient_ascent", "lr="),
    ("gradient_ascent", "lr=fast"), ("gradient_ascent", "epochs=0"), ("gradient_ascent", "epochs=1.5"),
    ("gradient_ascent", "epochs=" + "9" * 400), ("gradient_ascent", "steps=-1"),
    ("gradient_ascent", "batch_size=0"), ("gradient_ascent", "alpha=2"), ("gradient_ascent", "bogus=1"),
    ("gradient_ascent", "=5"), ("gradient_ascent", "lr"), ("gradient_ascent", "epochs=true"),
    ("loka-ft", "k=0"), ("loka-ft", "k=-5"), ("loka-ft", "kinds=bogus"), ("loka-ft", "ablation=none"),
    ("loka-ft", "ranking_method=nope"), ("loka", "per_round=0"), ("loka", "kinds="),
    ("retrain", "retrain_dir=/nonexistent"), ("output_suppression", "refusal="),
    ("output_suppression", "refusal=   "), ("task_vector", "scale=-1"),
]

SEEDS = ("-1", str(2**63), "100000000000000000000000", "1.5", "nan", "0x10")
SEED_COMMANDS = {
    "unlearn": ("unlearn", "--method", "gradient_ascent", *_DATA, "--out", "{out}", "--seed", "{S}"),
    "world build": ("world", "build", "--preset", "tiny", "--seed", "{S}"),
    "world info": ("world", "info", "--preset", "tiny", "--seed", "{S}"),
    "sequential": ("sequential", "--preset", "tiny", "--methods", "gradient_ascent", "--out", "{out}",
                   "--seed", "{S}"),
}

METHOD_LISTS = ("bogus", ",", " ", ",,", "base,bogus", "retrain,retrain,bogus", "BASE")
METHOD_COMMANDS = {
    "compare": ("compare", "--preset", "tiny", "--out", "{out}.json", "--methods", "{L}"),
    "demo": ("demo", "--preset", "tiny", "--out", "{out}", "--methods", "{L}"),
    "sequential": ("sequential", "--preset", "tiny", "--out", "{out}", "--methods", "{L}"),
}


def _ranking(edit: Any) -> Any:
    def setup(ctx: Any) -> None:
        d = json.loads(ctx.p("rankM").read_text())
        out = edit(d)
        (ctx.case / "r.json").write_text(out if isinstance(out, str) else json.dumps(d, allow_nan=True))
    return setup


RANKINGS: dict[str, Any] = {
    "random bytes": lambda d: os.urandom(64).hex(),
    "truncated": lambda d: json.dumps(d)[:500],
    "a NaN score": lambda d: d["forget_scores"].__setitem__(0, float("nan")),
    "no components": lambda d: d.update(components=[], forget_scores=[], retain_scores=[]),
    "a component out of range": lambda d: d["components"].__setitem__(0, "L9.N0"),
    "another format": lambda d: d.update(format="other"),
    "made on the world's base": lambda d: d.update(model_id="/elsewhere/base"),
}


def _options() -> list[Case]:
    g = "9 new"
    return [
        *[Case(g, f"ablate --top {t}", (*_ABLATE, "--top", t)) for t in ("0", "-1", "100000", "1.5")],
        *[Case(g, f"ablate --kinds {k!r}", (*_ABLATE, "--top", "3", "--kinds", k))
          for k in ("", "bogus", "neuron,", "head,bogus")],
        Case(g, "ablate --factor without rescale", (*_ABLATE, "--top", "3", "--factor", "2")),
        Case(g, "ablate --mode rescale without --factor", (*_ABLATE, "--top", "3", "--mode", "rescale")),
        Case(g, "ablate --mode bogus", (*_ABLATE, "--top", "3", "--mode", "bogus")),
        *[Case(g, f"attribute --weight {w}", ("attribute", *_DATA, "--out", "{out}.json", f"--weight={w}"))
          for w in ("nan", "-1", "inf", "1e400")],
        *[Case(g, f"attribute --method {m}", ("attribute", *_DATA, "--out", "{out}.json", "--method", m))
          for m in ("bogus", "")],
        Case(g, "attribute --ablation bogus", ("attribute", *_DATA, "--out", "{out}.json", "--ablation", "x")),
        Case(g, "attribute --kinds head,head", ("attribute", *_DATA, "--out", "{out}.json", "--kinds",
                                                "head,head"), expect="either",
             oracle=oracles.ranking("{out}.json", "{M}")),
        *[Case(g, f"--device {d}", ("attribute", *_DATA, "--out", "{out}.json", "--device", d), says="device")
          for d in ("bogus", "cuda", "cuda:99", "")],
        *[Case(g, f"--preset {p!r}", ("world", "info", "--preset", p), says="preset") for p in ("bogus", "")],
        *[Case(g, f"{c} --workers {w}", (c, "--preset", "tiny", "--methods", "base", "--out",
                                          "{out}" + (".json" if c == "compare" else ""), "--workers", w))
          for c in ("compare", "demo") for w in ("0", "-1")],
        *[Case("8 smaller", f"sequential --batches {b}", ("sequential", "--preset", "tiny", "--methods",
                                                          "gradient_ascent", "--out", "{out}", "--batches", b))
          for b in ("0", "-1", "100000")],
        Case("8 smaller", "forget facts also in retain", ("unlearn", "--method", "gradient_ascent", "--model",
             "{M}", "--forget", "{forget}", "--retain", "{forget}", "--set", "epochs=1", "--out", "{out}"),
             expect="ok", oracle=oracles.both(oracles.checkpoint(), oracles.says("both in --forget and --retain"))),
        Case("8 smaller", "only held-out templates to forget", ("unlearn", "--method", "gradient_ascent", "--model",
             "{M}", "--forget", "{case}/h.jsonl", "--retain", "{retain}", "--out", "{out}"),
             setup=lambda ctx: (ctx.case / "h.jsonl").write_text(
                 "".join(json.dumps({**json.loads(line), "template": "heldout"}) + "\n"
                         for line in ctx.p("forget").read_text().splitlines())), says="training form"),
        Case("8 smaller", "an existing checkpoint as --out", (*_UNLEARN, "--set", "epochs=1"),
             setup=lambda ctx: __import__("shutil").copytree(ctx.p("ckpt"), ctx.case / "out"),
             says=r"^(?!.*overwrite=True)"),
        Case("9 new", "a unicode, spaced --out", ("unlearn", *_UNLEARN[1:-1], "{case}/ünï cødé out",
                                                  "--set", "epochs=1"), expect="ok",
             oracle=oracles.checkpoint("{case}/ünï cødé out"), quick=True),
        Case("9 new", "a newline in --out", ("unlearn", *_UNLEARN[1:-1], "{case}/a\nb", "--set", "epochs=1"),
             expect="either", oracle=oracles.checkpoint("{case}/a\nb")),
        Case("9 new", "unlearn --method bogus", ("unlearn", "--method", "bogus", *_DATA, "--out", "{out}"),
             says="unknown method"),
        Case("9 new", "retrain on user data", ("unlearn", "--method", "retrain", *_DATA, "--out", "{out}")),
        # the retain file comes from the checkpoint's sealed manifest (what the user names wins)
        Case("9 new", "verify --forget without --retain (the manifest's retain)", ("verify", "--model", "{ckpt}",
             "--forget", "{forget}", "--json"), expect="ok", oracle=oracles.verify_json(files={"retain": "{retain}"})),
        Case("9 new", "verify --holdout alone (the manifest's data files)", ("verify", "--model", "{ckpt}",
             "--holdout", "{holdout}", "--json"), expect="ok", oracle=oracles.verify_json()),
        Case("9 new", "a 300-character --out name", (*_UNLEARN[:-1], "{case}/" + "x" * 300)),
        Case("9 new", "verify --retrain missing", ("verify", "--model", "{ckpt}", "--preset", "tiny",
                                                   "--retrain", "{case}/none", "--json")),
        Case("9 new", "verify --base a damaged model", ("verify", "--model", "{ckpt}", "--forget", "{forget}",
             "--retain", "{retain}", "--base", "{case}", "--json")),
        Case("9 new", "verify --no-retrain on the world", ("verify", "--model", "{ckpt}", "--preset", "tiny",
                                                           "--no-retrain", "--json"), expect="ok",
             oracle=oracles.verify_json()),
        Case("9 new", "no command", ()),
        Case("9 new", "an unknown command", ("erase",)),
        Case("9 new", "an unknown option", ("unlearn", "--methd", "x")),
    ]


def cases() -> list[Case]:
    out = [Case("4 settings", f"unlearn {m} --set {s}", ("unlearn", "--method", m, *_DATA, "--out", "{out}",
                                                         "--set", s), max_seconds=20, quick=s == "lr=nan")
           for m, s in BAD_SETTINGS]
    out += [Case("4 settings", f"{c} --seed {s}", tuple(a.replace("{S}", s) for a in argv), max_seconds=20,
                 quick=c == "unlearn" and s == "100000000000000000000000")
            for c, argv in SEED_COMMANDS.items() for s in SEEDS]
    out += [Case("8 smaller", f"{c} --methods {m!r}", tuple(a.replace("{L}", m) for a in argv), max_seconds=20,
                 quick=c == "compare" and m == "bogus")
            for c, argv in METHOD_COMMANDS.items() for m in METHOD_LISTS]
    out += [Case("7 unsupported", f"ablate a ranking: {name}", ("ablate", "--model", "{M}", "--ranking",
                                                                  "{case}/r.json", "--out", "{out}", "--top", "3"),
                 setup=_ranking(edit), max_seconds=20)
            for name, edit in RANKINGS.items()]
    out += [Case("7 unsupported", "ablate another model's ranking with --allow-other-model",
                 ("ablate", "--model", "{gpt2}", "--ranking", "{rankM}", "--top", "3", "--allow-other-model",
                  "--out", "{out}"), says="shape|fit|layer|does not"),
            Case("7 unsupported", "ablate another model's ranking", ("ablate", "--preset", "tiny", "--ranking",
                 "{rankM}", "--top", "3", "--out", "{out}"), says="made on"),
            Case("7 unsupported", "ablate the world's ranking elsewhere, allowed", ("ablate", "--preset", "tiny",
                 "--ranking", "{rankM}", "--top", "3", "--allow-other-model", "--out", "{out}"), expect="ok",
                 oracle=oracles.checkpoint()),
            Case("7 unsupported", "ablate --ranking a directory", (*_ABLATE[:3], "--ranking", "{case}", "--top",
                                                                   "3", "--out", "{out}")),
            Case("7 unsupported", "ablate --ranking /dev/zero", (*_ABLATE[:3], "--ranking", "/dev/zero", "--top",
                                                                 "3", "--out", "{out}"), max_seconds=20)]
    return out + _options()
