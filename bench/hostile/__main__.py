"""``python -m bench.hostile [--json] [--quick] [--only REGEX]``: replay the hostile cases."""

from __future__ import annotations

import re
import sys
from typing import Any

from bench._common import finish, machine, parser, print_table, setup
from bench.hostile import OUTCOMES, all_cases, replay


def _render(out: dict[str, Any]) -> None:
    s = out["summary"]
    print_table("hostile inputs on the tiny world (issue 20)", ("group", "tried", *OUTCOMES),
                [(g, c["tried"], *(c[o] for o in OUTCOMES)) for g, c in out["by_group"].items()]
                + [("all", s["tried"], *(s[o] for o in OUTCOMES))])
    bad = [r for r in out["cases"] if r["outcome"] not in ("clean_error", "correct")]
    for r in bad:
        print(f"{r['outcome']}: {r['group']} | {r['name']}: {r['detail']}")
    print(f"tried {s['tried']}: {s['clean_error']} clean errors, {s['correct']} correct, "
          f"{s['traceback']} tracebacks, {s['silent_wrong']} silently wrong, {s['data_lost']} data lost "
          f"({out['seconds']:.0f} s)")


def main(argv: list[str] | None = None) -> int:
    p = parser("python -m bench.hostile", __doc__ or "")
    p.set_defaults(preset="tiny")
    p.add_argument("--quick", action="store_true", help="only the cases the default test suite replays")
    p.add_argument("--only", default=None, help="only cases whose 'group | name' matches this regex")
    p.add_argument("--workdir", default=None, help="where the temporary workspace goes")
    args = p.parse_args(argv)
    if args.preset != "tiny":
        p.error("the hostile cases are written for the tiny world: --preset tiny")
    device = setup(args)
    cases = [c for c in all_cases() if (c.quick or not args.quick)
             and (args.only is None or re.search(args.only, f"{c.group} | {c.name}"))]
    out = replay(cases, args.workdir)
    out["machine"] = machine(device)
    finish(out, args.json, _render)
    s = out["summary"]
    return 1 if s["traceback"] or s["silent_wrong"] or s["data_lost"] else 0


if __name__ == "__main__":
    sys.exit(main())
