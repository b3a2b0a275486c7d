"""Every notebook runs top to bottom (nbclient) and is committed with the outputs of such a run
(``make notebooks``), so its figures and tables show where it is browsed: 01-03 on the tiny world
in the default suite; 04 on SmolLM2-135M (minutes) and 05 on the planted world (a build of about
two minutes when it is not cached, then about two minutes) with ``make test-slow``."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).parents[1] / "notebooks").glob("*.ipynb"))


def test_the_notebooks_are_there():
    assert {"01", "02", "03", "04", "05"} <= {p.name[:2] for p in NOTEBOOKS}


def _marked(path: Path):
    return pytest.param(path, marks=pytest.mark.slow) if path.name.startswith(("04", "05")) else path


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_committed_with_the_outputs_of_a_clean_run(path):
    book = nbformat.read(path, as_version=4)
    code = [cell for cell in book.cells if cell.cell_type == "code"]
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1)), \
        f"{path.name}: run `make notebooks` (every cell once, in order)"
    assert not [o for c in code for o in c.outputs if o.output_type == "error"], f"{path.name}: an error output"


@pytest.mark.parametrize("path", [_marked(p) for p in NOTEBOOKS], ids=lambda p: p.stem)
def test_notebook_runs_top_to_bottom(path, tiny_world, tmp_path, monkeypatch, request):
    """The tiny world is built first (fixture), so each notebook only reads the cache; the
    comparison notebook reads the session's tiny demo instead of running the methods again."""
    book = nbformat.read(path, as_version=4)
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")
    if path.name.startswith("03"):
        demo = request.getfixturevalue("tiny_demo")
        monkeypatch.setenv("LOKA_RESULTS", str(demo.out / "results.json"))
    client = NotebookClient(book, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError naming the failing cell
    errors = [o for c in book.cells if c.cell_type == "code" for o in c.outputs
              if o.output_type == "error"]
    assert not errors
