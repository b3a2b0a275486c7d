"""Execute every notebook in place, so the committed notebooks show their figures and tables.

    .venv/bin/python scripts/run_notebooks.py [notebooks/01_exploring_the_circuit.ipynb ...]

(``make notebooks``.) Each notebook runs top to bottom in its own kernel from ``notebooks/``, on
the embedded tiny world (built into the cache on first use); a failing cell stops the run and
leaves that notebook as it was.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]


def run(path: Path) -> None:
    book = nbformat.read(path, as_version=4)
    NotebookClient(book, timeout=1800, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    tmp = path.with_name(f".{path.name}.tmp")
    nbformat.write(book, tmp)
    tmp.replace(path)
    print(f"executed {path.relative_to(ROOT)}", flush=True)


def main(argv: list[str]) -> int:
    paths = [Path(a).resolve() for a in argv] or sorted((ROOT / "notebooks").glob("*.ipynb"))
    for path in paths:
        run(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
