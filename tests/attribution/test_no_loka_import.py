"""`attribution` depends on TransformerLens and torch only: it never imports `loka`."""

import re
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "attribution"


def test_source_never_names_loka_in_an_import():
    pattern = re.compile(r"^\s*(from|import)\s+loka\b", re.MULTILINE)
    offenders = [p.name for p in PACKAGE.rglob("*.py") if pattern.search(p.read_text())]
    assert offenders == []


def test_importing_every_module_loads_no_loka():
    modules = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__")
    code = "import sys, attribution\n" + "".join(f"import attribution.{m}\n" for m in modules) + (
        "bad = [m for m in sys.modules if m == 'loka' or m.startswith('loka.')]\n"
        "assert not bad, bad\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=PACKAGE.parent)
