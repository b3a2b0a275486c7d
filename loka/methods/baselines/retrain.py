"""The gold standard as a method: the model retrained from scratch without the forget set.

The retrained checkpoint is loaded from ``retrain_dir`` and its weights are copied into the
caller's model (same architecture required). ``seconds`` is the retrain model's recorded training
time (the world cache records it; else pass ``retrain_seconds``), not the seconds spent loading.

>>> art = load_world("default")                                                           # doctest: +SKIP
>>> unlearn(art.base_dir, task, method="retrain", retrain_dir=art.retrain_dir).seconds    # doctest: +SKIP
190.4
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from loka.errors import LokaError
from loka.methods.base import UnlearnResult, UnlearnTask, register
from loka.methods.settings import positive


def recorded_seconds(retrain_dir: Path) -> float | None:
    """Training seconds the world cache recorded for this checkpoint, if it is a cache entry."""
    from loka.world.cache import read_meta

    try:
        return float(read_meta(retrain_dir)["train_seconds"])
    except (OSError, KeyError, ValueError, TypeError):
        return None


@register("retrain")
def retrain(model: Any, tokenizer: Any, task: UnlearnTask, *, seed: int = 0, progress: bool = True,
            retrain_dir: str | Path | None = None, retrain_seconds: float | None = None,
            **settings: Any) -> UnlearnResult:
    """Replace the weights with the retrained checkpoint's; every parameter counts as changed."""
    if settings:
        raise LokaError(f"retrain: unknown setting(s) {', '.join(sorted(settings))}; "
                        "allowed: retrain_dir, retrain_seconds")
    if retrain_dir is None:
        raise LokaError("retrain needs the retrained model: pass retrain_dir=... (a world's "
                        "`retrain_dir`, or your own model trained without the forget set)")
    if retrain_seconds is not None:
        positive("retrain_seconds", retrain_seconds)
    path = Path(retrain_dir).expanduser()
    if not (path / "config.json").is_file():
        raise LokaError(f"retrain_dir {path} is not a Hugging Face checkpoint (no config.json)")
    from transformers import AutoModelForCausalLM

    t0 = time.perf_counter()
    gold = AutoModelForCausalLM.from_pretrained(path)
    state = gold.state_dict()
    mine = model.state_dict()
    if set(state) != set(mine) or any(state[k].shape != mine[k].shape for k in mine):
        raise LokaError(f"the retrain model in {path} has a different architecture from the model "
                        "being unlearned; retrain with the same configuration")
    with torch.no_grad():
        changed = sum(int((mine[k].cpu() != state[k]).sum()) for k in mine)
        model.load_state_dict(state)
    seconds = retrain_seconds if retrain_seconds is not None else recorded_seconds(path)
    notes = [] if seconds is not None else ["training time unknown (pass retrain_seconds): "
                                            "seconds is the time to load the checkpoint"]
    return UnlearnResult(
        method="retrain", model=model, tokenizer=tokenizer,
        settings={"retrain_dir": str(path), "retrain_seconds": seconds},
        seconds=seconds if seconds is not None else time.perf_counter() - t0,
        params_changed=sum(p.numel() for p in model.parameters()), notes=notes + [
            f"{changed} parameter entries differ from the model before (every parameter is retrained)"],
    )
