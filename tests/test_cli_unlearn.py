"""``loka attribute``, ``loka ablate``, ``loka unlearn``: files written, checkpoints reload, bad input is one line."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import pytest

from loka.cli import main
from loka.io.checkpoint import sha256_of_checkpoint
from loka.io.manifest import MANIFEST


class Proc(NamedTuple):
    returncode: int
    stdout: str
    stderr: str


def _subprocess(*args) -> Proc:
    """The real command line (slow to start: used for a few cases only)."""
    proc = subprocess.run([sys.executable, "-m", "loka", *args], capture_output=True, text=True,
                          env={**os.environ, "TOKENIZERS_PARALLELISM": "false"}, timeout=300)
    return Proc(proc.returncode, proc.stdout, proc.stderr)


def _loka(*args) -> Proc:
    """``loka ARGS`` in this process (same `main`, same error handling, no interpreter start)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return Proc(code, out.getvalue(), err.getvalue())


def _one_line_error(proc: Proc, needle: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("loka: error:")]
    assert len(lines) == 1 and needle in lines[0], proc.stderr


@pytest.fixture(scope="module")
def ranking(tiny_world, tmp_path_factory):
    out = tmp_path_factory.mktemp("attr")
    proc = _loka("attribute", "--preset", "tiny", "--method", "atp", "--out", str(out / "r.json"),
                 "--heatmap", str(out / "h.png"))
    assert proc.returncode == 0, proc.stderr
    return out


def test_attribute_writes_ranking_and_heatmaps(ranking):
    from attribution import Ranking

    assert len(Ranking.load(ranking / "r.json")) > 0
    for name in ("h.png", "h_neurons.png"):
        assert (ranking / name).read_bytes()[:4] == b"\x89PNG"


def test_ablate_and_unlearn_write_checkpoints_that_reload(ranking, tiny_world, tmp_path):
    from transformers import AutoModelForCausalLM

    proc = _loka("ablate", "--preset", "tiny", "--ranking", str(ranking / "r.json"), "--top", "8",
                 "--kinds", "neuron", "--out", str(tmp_path / "ablated"))
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "ablated" / MANIFEST).read_text())["plans"][0]["mode"] == "zero"
    proc = _loka("unlearn", "--method", "loka-ft", "--preset", "tiny", "--out", str(tmp_path / "ft"),
                 "--set", "k=16", "--set", "steps=3", "--set", "forget_target=null", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["params_changed"] > 0
    AutoModelForCausalLM.from_pretrained(tmp_path / "ft")
    from loka.io.manifest import read_manifest
    from loka.io.provenance import check_provenance

    prov = read_manifest(tmp_path / "ft")["provenance"]  # seed, world, data files' sha256
    assert prov["seed"] == 0 and prov["world"]["preset"] == "tiny"
    assert {Path(f["path"]).name for f in prov["data_files"]} == {
        tiny_world.facts_file("forget").name, tiny_world.facts_file("retain_train").name}
    ablated = read_manifest(tmp_path / "ablated")["provenance"]
    assert [Path(f["path"]).name for f in ablated["data_files"]] == ["r.json"]
    assert check_provenance(tmp_path / "ft") == check_provenance(tmp_path / "ablated") == []


def test_bad_inputs_are_one_line_errors_and_leave_the_source_alone(ranking, tiny_world, tmp_path):
    base = tiny_world.base_dir
    digest = sha256_of_checkpoint(base)
    r = str(ranking / "r.json")
    out = str(tmp_path / "o")
    _one_line_error(_subprocess("unlearn", "--method", "nope", "--preset", "tiny", "--out", out),
                    "unknown method")
    _one_line_error(_loka("unlearn", "--method", "loka-ft", "--preset", "tiny", "--forget",
                          str(tmp_path / "missing.jsonl"), "--out", out), "no such file")
    _one_line_error(_loka("unlearn", "--method", "loka-ft", "--preset", "tiny", "--out", out,
                          "--set", "k=0"), "setting 'k'")
    _one_line_error(_loka("unlearn", "--method", "loka-ft", "--preset", "tiny", "--out", str(base)),
                    "model directory")
    _one_line_error(_loka("ablate", "--preset", "tiny", "--ranking", r, "--top", "0", "--out", out), "--top")
    _one_line_error(_loka("ablate", "--preset", "tiny", "--ranking", r, "--top", "4", "--mode", "rescale",
                          "--factor", "nan", "--out", out), "finite")
    _one_line_error(_subprocess("ablate", "--preset", "tiny", "--ranking", r, "--top", "4",
                                "--out", str(base / "inside")), "model directory")
    data = json.loads((ranking / "r.json").read_text())
    data["components"][0] = "L9.N0"  # a ranking from a deeper model
    data["contrast_scores"][0] = data["forget_scores"][0] = 1e6
    (tmp_path / "other.json").write_text(json.dumps(data))
    _one_line_error(_loka("ablate", "--preset", "tiny", "--ranking", str(tmp_path / "other.json"),
                          "--top", "4", "--out", out), "out of range")
    assert sha256_of_checkpoint(base) == digest and not (tmp_path / "o").exists()


def test_verify_finds_an_unlearned_checkpoints_own_files(tiny_world, tmp_path):
    """`loka unlearn` on your own files, then `loka verify --model edited/`: the manifest names the
    forget and retain files and the source model (the base for the damage check); the report has
    the demo's shape, with retrain-relative metrics null and the reason."""
    from loka.verify.verifier import report_keys

    forget, retain = tiny_world.facts_file("forget"), tiny_world.facts_file("retain_train")
    edited = tmp_path / "edited"
    proc = _loka("unlearn", "--method", "loka-ft", "--model", str(tiny_world.base_dir),
                 "--forget", str(forget), "--retain", str(retain), "--out", str(edited),
                 "--set", "k=16", "--set", "steps=3", "--set", "forget_target=null", "--json")
    assert proc.returncode == 0, proc.stderr
    fast = ("--attack", "relearn_steps=2", "--attack", "relearn_eval_every=1", "--attack", "benign_steps=2")
    proc = _loka("verify", "--model", str(edited), "--holdout", str(tiny_world.facts_file("holdout")),
                 "--json", *fast)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert all(k in report for k in report_keys())
    assert report["data"] == "user data"
    used = report["user_data"]
    assert Path(used["forget"]).resolve() == forget.resolve() and Path(used["retain"]).resolve() == retain.resolve()
    assert Path(used["base"]).resolve() == tiny_world.base_dir.resolve()
    assert report["privleak"] is None and "retrain" in report["privleak_reason"]
    assert report["mia_auc"] is not None  # the holdout given on the command line was used
    assert report["damage"] is not None and isinstance(report["damage"]["damaged"], bool)  # base: the source

    stranger = tmp_path / "stranger"  # a model without a manifest: the files must be named
    stranger.mkdir()
    for f in tiny_world.base_dir.iterdir():
        if f.is_file() and f.name != MANIFEST:
            (stranger / f.name).write_bytes(f.read_bytes())
    _one_line_error(_loka("verify", "--model", str(stranger), "--holdout", str(forget)), "--forget and --retain")


def test_unlearn_with_prefix_none_saves_it_and_verify_reads_every_model_after_it(tiny_world, tmp_path):
    """`loka unlearn --prefix none` trains on the prompts' own tokens and saves that choice with the
    edited model; `loka verify --model edited/` then reads the data and the base the same way (a base
    read after its BOS would be refused as not comparable), and `--prefix` overrides it; a prefix
    that does not exist is an error before any model loads."""
    from transformers import AutoTokenizer

    from attribution.data import prefix_ids, tokenize_facts
    from loka.io.models import saved_prefix

    forget, retain = tiny_world.facts_file("forget"), tiny_world.facts_file("retain_train")
    edited = tmp_path / "edited"
    proc = _loka("unlearn", "--method", "loka-ft", "--model", str(tiny_world.base_dir), "--prefix", "none",
                 "--forget", str(forget), "--retain", str(retain), "--out", str(edited),
                 "--set", "k=16", "--set", "steps=2", "--set", "forget_target=null", "--json")
    assert proc.returncode == 0, proc.stderr
    assert saved_prefix(edited) == "none" and saved_prefix(tiny_world.base_dir) is None
    tok = AutoTokenizer.from_pretrained(edited)
    assert prefix_ids(tok) == [] and tokenize_facts(tok, ["Osric Pell is"], ["here"]).input_ids[0, 0] != tok.bos_token_id
    fast = ("--attack", "skip=relearn,benign_relearn,icl,quantization,probes,logit_lens,depth,extraction",)
    reports = {}
    for extra in ((), ("--prefix", "bos")):
        proc = _loka("verify", "--model", str(edited), "--json", *extra, *fast)
        assert proc.returncode == 0, proc.stderr
        reports[extra] = json.loads(proc.stdout)
    # the same model and data read after another first token: other numbers
    # each report's forget accuracy is the edited model's, its prompts read after that prefix
    from transformers import AutoModelForCausalLM

    from attribution.data import with_prefix
    from loka.evaluate import first_token_accuracy
    from loka.io.data import load_facts

    model = AutoModelForCausalLM.from_pretrained(edited).eval()
    facts = [f for f in load_facts(forget) if f.kind == "train"]
    none, bos = first_token_accuracy(model, tok, facts), first_token_accuracy(model, with_prefix(tok, "bos"), facts)
    assert reports[()]["forget_accuracy"] == pytest.approx(none)
    assert reports[("--prefix", "bos")]["forget_accuracy"] == pytest.approx(bos)
    assert none != bos  # the same model read after another first token
    from loka.errors import LokaError
    from loka.methods import UnlearnTask, unlearn

    with pytest.raises(LokaError, match="unknown prefix 'cls': use one of bos, eos, none"):
        unlearn(str(tiny_world.base_dir), UnlearnTask(tuple(facts), ()), "loka-ft", prefix="cls")
    # in memory: the edit is read without a prefix, the caller's tokenizer keeps its own
    from attribution.data import prefix_of
    from loka.io.models import load_hf

    hf, own = load_hf(tiny_world.base_dir)
    kept = tuple(f for f in load_facts(retain) if f.kind == "train")
    result = unlearn((hf, own), UnlearnTask(tuple(facts), kept), "loka-ft", prefix="none", steps=1, k=8,
                     forget_target=None, progress=False)
    assert prefix_of(result.tokenizer) == "none" and prefix_of(own) == "bos"
    # a ranking made without a prefix is applied that way by `loka ablate` (and another prefix refused)
    ranked = tmp_path / "r.json"
    assert _loka("attribute", "--preset", "tiny", "--method", "atp", "--prefix", "none", "--out", str(ranked)).returncode == 0
    proc = _loka("ablate", "--preset", "tiny", "--ranking", str(ranked), "--top", "4", "--mode", "mean",
                 "--out", str(tmp_path / "ablated"))
    assert proc.returncode == 0, proc.stderr
    assert saved_prefix(tmp_path / "ablated") == "none"
    _one_line_error(_loka("ablate", "--preset", "tiny", "--ranking", str(ranked), "--top", "4", "--prefix", "bos",
                          "--out", str(tmp_path / "other")), "made with prefix 'none'")
