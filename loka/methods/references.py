"""The two references every comparison is read against, as methods: ``base`` and ``retrain``.

``base`` is the model as it was (nothing changed). ``retrain`` is the gold standard: the model
retrained from scratch without the forget set, whose weights are copied into the caller's model
(same architecture required) from ``retrain_dir`` or, by default, the task's (a world's);
``seconds`` is that model's recorded training time (the world cache records it; else pass
``retrain_seconds``), not the seconds spent loading it.

>>> unlearn(art.base_dir, task_from_world(art), method="retrain").seconds    # doctest: +SKIP
190.4
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from loka.errors import LokaError
from loka.methods.config import MethodConfig, knob
from loka.methods.registry import register
from loka.methods.task import UnlearnResult, UnlearnTask


@dataclass(frozen=True)
class BaseConfig(MethodConfig):
    pass


@register("base", BaseConfig, family="reference", changes_weights=False, cost=2,
          summary="the model before unlearning (reference: nothing changed)")
def base(model: Any, tokenizer: Any, task: UnlearnTask, cfg: BaseConfig, *, seed: int,
         progress: bool) -> UnlearnResult:
    return UnlearnResult(method="base", model=model, tokenizer=tokenizer, settings={},
                         seconds=0.0, params_changed=0, notes=["the unedited model (a reference)"])


@dataclass(frozen=True)
class RetrainConfig(MethodConfig):
    retrain_dir: str | None = knob(None, help="checkpoint trained without the forget set (default: the world's)")
    retrain_seconds: float | None = knob(None, gt=0, help="its training time, if not recorded")


def recorded_seconds(retrain_dir: Path) -> float | None:
    """Training seconds the world cache recorded for this checkpoint, if it is a cache entry."""
    from loka.world.cache import read_meta

    try:
        return float(read_meta(retrain_dir)["train_seconds"])
    except (OSError, KeyError, ValueError, TypeError):
        return None


@register("retrain", RetrainConfig, family="reference", cost=0,
          summary="the gold standard: retrained from scratch without the forget set")
def retrain(model: Any, tokenizer: Any, task: UnlearnTask, cfg: RetrainConfig, *, seed: int,
            progress: bool) -> UnlearnResult:
    """Replace the weights with the retrained checkpoint's; every parameter counts as changed."""
    where = cfg.retrain_dir or task.retrain_dir
    if where is None:
        raise LokaError("no retrain model: retrain needs a model trained without the forget set "
                        "(a world's, or yours with --set retrain_dir=DIR); retrain-relative "
                        "metrics are reported as missing instead")
    path = Path(where).expanduser()
    from loka.io.models import load_hf

    t0 = time.perf_counter()
    gold, _ = load_hf(path)
    state, mine = gold.state_dict(), model.state_dict()
    if set(state) != set(mine) or any(state[k].shape != mine[k].shape for k in mine):
        raise LokaError(f"the retrain model in {path} has a different architecture from the model "
                        "being unlearned; retrain with the same configuration")
    with torch.no_grad():
        changed = sum(int((mine[k].cpu() != state[k]).sum()) for k in mine)
        model.load_state_dict(state)
    seconds = cfg.retrain_seconds if cfg.retrain_seconds is not None else recorded_seconds(path)
    notes = [] if seconds is not None else ["training time unknown (pass retrain_seconds): "
                                            "seconds is the time to load the checkpoint"]
    return UnlearnResult(
        method="retrain", model=model, tokenizer=tokenizer,
        settings={"retrain_dir": str(path), "retrain_seconds": seconds},
        seconds=seconds if seconds is not None else time.perf_counter() - t0,
        params_changed=sum(p.numel() for p in model.parameters()), notes=notes + [
            f"{changed} parameter entries differ from the model before (every parameter is retrained)"],
    )
