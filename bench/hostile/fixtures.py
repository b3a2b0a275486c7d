"""The workspace every case runs in: the tiny world, a copy of its base model, data files, a
ranking, a healthy unlearned checkpoint and the hostile models (NaN, overflow, BERT, T5, ...).

`Context.paths` fills the cases' ``{placeholders}``:

    M          a copy of the world's base model (a user's model; protected like the cache)
    base       the world's own base model, inside the cache;  entry: its cache entry; cache
    forget, retain, holdout   copies of the world's fact files (JSONL)
    rankM      a ranking made on M;  ckpt: gradient_ascent's checkpoint of M (sealed manifest)
    gpt2       a random GPT-2 with a 24-token context;  bert, t5: unsupported architectures
    nan, inf, overflow   M with NaN / infinite weights / finite weights whose outputs overflow
    case, out  this case's own directory, and a fresh output path inside it
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch


@dataclass
class Context:
    """Paths of the workspace, and the case being run (set by the runner)."""

    ws: Path
    art: Any  # the tiny world's WorldArtifacts
    paths: dict[str, str] = field(default_factory=dict)
    case: Path = field(default_factory=Path)  # this case's directory (set by the runner)

    def fmt(self, text: str) -> str:
        return text.format_map({**self.paths, "case": str(self.case), "out": str(self.case / "out")})

    def p(self, key: str) -> Path:
        return Path(self.paths[key])


def _copy_model(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("loka_cache.json"))
    return dst


def _edited(src: Path, dst: Path, edit: Any) -> Path:
    """A copy of ``src`` whose weights ``edit(model)`` changed, saved without LOKA's guards, with
    a sealed manifest claiming an unlearning method (as a careless script would leave it)."""
    from transformers import AutoModelForCausalLM

    from loka.io.checkpoint import sha256_of_checkpoint
    from loka.io.manifest import write_manifest

    model = AutoModelForCausalLM.from_pretrained(src)
    with torch.no_grad():
        edit(model)
    model.save_pretrained(dst)
    for f in src.glob("tokenizer*"):
        shutil.copy(f, dst / f.name)
    write_manifest(dst, {"loka_manifest": 2, "method": "gradient_ascent", "source_model": str(src),
                         "source_sha256": sha256_of_checkpoint(src), "plans": [],
                         "result": {"diverged": False, "params_changed": 1}, "metrics": {},
                         "provenance": {"seed": 0, "data_files": [],
                                        "weights_sha256": sha256_of_checkpoint(dst)}})
    return dst


def _nan(model: Any) -> None:
    next(model.parameters()).view(-1)[:7] = float("nan")


def _inf(model: Any) -> None:
    next(model.parameters()).view(-1)[:7] = float("inf")


def _overflow(model: Any) -> None:
    model.gpt_neox.final_layer_norm.weight.mul_(1e30)  # finite weights; logits ~1e40 overflow
    model.get_output_embeddings().weight.mul_(1e10)


def _foreign(dst: Path, tokenizer_from: Path, model_type: str, **kw: Any) -> Path:
    """A tiny random checkpoint of another architecture, with M's tokenizer."""
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

    cfg = AutoConfig.for_model(model_type, vocab_size=1375, **kw)
    torch.manual_seed(0)
    try:
        model = AutoModelForCausalLM.from_config(cfg)
    except ValueError:  # BERT, T5: no causal-LM head in this form
        model = AutoModel.from_config(cfg)
    model.save_pretrained(dst)
    for f in tokenizer_from.glob("tokenizer*"):
        shutil.copy(f, dst / f.name)
    return dst


def write_facts(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def build(ws: Path, art: Any) -> Context:
    """Create the workspace's fixtures under ``ws/fx`` (about half a minute on the tiny world)."""
    from bench.hostile.harness import run_in_process

    fx = ws / "fx"
    fx.mkdir(parents=True)
    ctx = Context(ws, art)
    m = _copy_model(art.base_dir, fx / "M")
    paths = {"M": m, "base": art.base_dir, "retrain": art.retrain_dir, "entry": art.root,
             "cache": art.root.parent, "ws": ws, "fx": fx}
    for name, split in (("forget", "forget"), ("retain", "retain_train"), ("holdout", "holdout")):
        paths[name] = Path(shutil.copy(art.facts_file(split), fx / f"{name}.jsonl"))
    paths["nan"] = _edited(m, fx / "nan", _nan)
    paths["inf"] = _edited(m, fx / "inf", _inf)
    paths["overflow"] = _edited(m, fx / "overflow", _overflow)
    paths["gpt2"] = _foreign(fx / "gpt2", m, "gpt2", n_embd=32, n_layer=1, n_head=2, n_positions=24,
                             bos_token_id=0, eos_token_id=0, pad_token_id=1)
    paths["bert"] = _foreign(fx / "bert", m, "bert", hidden_size=32, num_hidden_layers=1,
                             num_attention_heads=2, intermediate_size=64)
    paths["t5"] = _foreign(fx / "t5", m, "t5", d_model=32, d_ff=64, num_layers=1, num_heads=2, d_kv=16)
    ctx.paths = {k: str(v) for k, v in paths.items()}
    ctx.case = fx
    for argv in (["attribute", "--model", "{M}", "--forget", "{forget}", "--retain", "{retain}",
                  "--out", "{fx}/rankM.json"],
                 ["unlearn", "--method", "gradient_ascent", "--model", "{M}", "--forget", "{forget}",
                  "--retain", "{retain}", "--set", "epochs=1", "--out", "{fx}/ckpt"]):
        run = run_in_process([ctx.fmt(a) for a in argv], {}, ws)
        if run.rc != 0:
            raise RuntimeError(f"fixture {argv[0]} failed: {run.stderr[-2000:]}")
    ctx.paths |= {"rankM": str(fx / "rankM.json"), "ckpt": str(fx / "ckpt")}
    return ctx
