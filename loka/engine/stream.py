"""Commit a plan to a checkpoint on disk, shard by shard, without loading the model.

For a model too large to hold (a 70B checkpoint dispatched across devices, part of it on disk),
the weight edit is applied to the checkpoint's safetensors files one shard at a time: each shard
is read, the slices the plan's components own are edited exactly as `commit` edits a loaded
model (same adapters, same journal, same finiteness check), and the shard is written into the
new checkpoint. Peak memory is one shard. The new checkpoint goes through the staged, sealed
save path of `loka.io`; config, tokenizer and generation files are copied as they are.

Example:
    >>> commit_to_checkpoint("ckpt/llama-70b", AblationPlan.zero(components), "out/edited")  # doctest: +SKIP
    PosixPath('out/edited')
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from attribution.components import ModelShape
from loka.engine.adapters import ADAPTERS
from loka.engine.commit import Journal, _apply, _check_finite, _resolve
from loka.engine.errors import PlanError, UnsupportedArchitectureError
from loka.engine.plan import AblationPlan

_COPY = ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
         "special_tokens_map.json", "vocab.json", "merges.txt", "tokenizer.model",
         "chat_template.jinja", "model.safetensors.index.json")


def shape_of(config: Any) -> ModelShape:
    """A model's `ModelShape` from its Hugging Face config (no weights)."""
    n_heads = int(config.num_attention_heads)
    d_model = int(config.hidden_size)
    d_head = int(getattr(config, "head_dim", None) or d_model // n_heads)
    d_mlp = int(getattr(config, "intermediate_size", None) or getattr(config, "n_inner", None) or 4 * d_model)
    return ModelShape(int(config.num_hidden_layers), n_heads, d_mlp, d_head, d_model)


def _shard_of(source: Path) -> dict[str, Path]:
    """Each parameter name's safetensors file."""
    from safetensors import safe_open

    out: dict[str, Path] = {}
    for f in sorted(source.glob("*.safetensors")):
        with safe_open(str(f), framework="pt") as st:
            out.update({k: f for k in st.keys()})
    return out


def _edit_shard(tensors: dict[str, torch.Tensor], plan: AblationPlan, adapter: Any,
                names: Mapping[str, Path], shard: Path) -> int:
    """Apply the plan's edits whose write slice is in this shard; entries changed."""
    here = [i for i, c in enumerate(plan.components) if names.get(adapter.params(c).write.param) == shard]
    if not here:
        return 0
    sub = AblationPlan(tuple(plan.components[i] for i in here), plan.mode,
                       factor=tuple(plan.factors()[i] for i in here) if plan.mode == "rescale" else None,
                       means=tuple(plan.means[i] for i in here) if plan.means is not None else None)
    for i in here:
        p = adapter.params(plan.components[i])
        needed = [p.write.param, *(s.param for s in p.reads if s.param in names)]
        needed += [p.bias] if plan.mode == "mean" and p.bias else []
        if any(names.get(n) != shard for n in needed):
            raise PlanError(f"{plan.components[i]}: its parameters span several shards; edit this "
                            "checkpoint with the model loaded (loka ablate without --device-map)")
    journal = Journal(tensors, sub)
    with torch.no_grad():
        for i, (p, reads) in enumerate(_resolve(adapter, sub, tensors)):
            _apply(journal, sub, i, p, reads, tensors)
    _check_finite(journal)
    return journal.n_changed()


def commit_to_checkpoint(source: str | Path, plan: AblationPlan, out_dir: str | Path, *,
                         method: str = "ablation_plan", provenance: dict[str, Any] | None = None,
                         metrics: dict[str, Any] | None = None) -> Path:
    """Write ``source`` with ``plan`` committed to the new checkpoint ``out_dir`` (module doc)."""
    from safetensors.torch import load_file, save_file
    from transformers import AutoConfig

    from loka.io.atomic import staged_dir, write_json
    from loka.io.checkpoint import manifest_record, sha256_of_checkpoint
    from loka.io.manifest import MANIFEST, seal
    from loka.io.outputs import check_output

    src = Path(source).expanduser()
    target = check_output(out_dir, kind="dir", sources=[src], what="checkpoint directory")
    config = AutoConfig.from_pretrained(src)
    if config.model_type not in ADAPTERS:
        raise UnsupportedArchitectureError(f"architecture {config.model_type!r} is not supported; "
                                           f"supported: {', '.join(sorted(ADAPTERS))}")
    plan.check_fits(shape_of(config))
    adapter, names = ADAPTERS[config.model_type](config), _shard_of(src)
    changed = 0
    with staged_dir(target) as tmp:
        for shard in sorted(set(names.values())):
            tensors = load_file(str(shard))
            changed += _edit_shard(tensors, plan, adapter, names, shard)
            save_file(tensors, str(tmp / shard.name), metadata={"format": "pt"})
        for name in _COPY:
            if (src / name).is_file():
                shutil.copyfile(src / name, tmp / name)
        manifest = manifest_record(config.architectures[0] if config.architectures else config.model_type,
                                   method, str(src), [plan.to_dict()], {"params_changed": changed,
                                                                        "streamed": True}, metrics)
        manifest["provenance"] = {**(provenance or {}), "weights_sha256": sha256_of_checkpoint(tmp)}
        write_json(tmp / MANIFEST, seal(manifest))
    return target
