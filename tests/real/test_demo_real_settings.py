"""`make demo-real` and `bench.real` run the same methods with the same verifier settings."""

from __future__ import annotations

import re
from pathlib import Path

from bench.real import DEMO_METHODS, DEMO_VERIFY, demo_verify_settings


def _makefile_value(name: str) -> str:
    text = Path("Makefile").read_text().replace("\\\n", " ")
    match = re.search(rf"^{name}\s*:=\s*(.*)$", text, re.M)
    assert match, f"{name} is not set in the Makefile"
    return match.group(1)


def test_the_makefile_and_bench_real_agree():
    assert tuple(_makefile_value("REAL_METHODS").split(",")) == DEMO_METHODS
    attacks = dict(a.split("=", 1) for a in re.findall(r"--attack (\S+)", _makefile_value("REAL_VERIFY")))
    assert attacks == {k: str(v) for k, v in DEMO_VERIFY.items()}
    settings = demo_verify_settings()
    assert settings.threads == 2 and settings.skip == ("benign_relearn",)
    assert "relearn" not in settings.skip  # the relearning attack is in the table
