"""LOKA — Localized Knowledge Ablation: find, edit and verify the components that carry knowledge.

The documented Python API, one import away (names load on first use, so ``import loka`` is
cheap). Data flows one way — attribute -> edit -> verify -> report:

>>> from loka import load_world, rank, unlearn, verify, task_from_world     # doctest: +SKIP
>>> art = load_world("tiny")                                                # doctest: +SKIP
>>> result = unlearn(art.base_dir, task_from_world(art), method="loka-ft")  # doctest: +SKIP
>>> report = verify((result.model, result.tokenizer), art, retrain=art.retrain_dir)  # doctest: +SKIP
>>> result.save("out/forgot-them", source=art.base_dir)                    # doctest: +SKIP
"""

from __future__ import annotations

import importlib
import os
from typing import Any

__version__ = "0.1.0"

# transformers 5.25 swaps layers for Hugging Face hub kernels on every load unless USE_HUB_KERNELS says
# no. LOKA hooks and edits the reference modules (an MLP's activations and weights), promises the same
# weights bit for bit in every process, must not reach for the hub, and checks a checkpoint on the meta
# device, where kernelizing fails ("Unsupported device type 'meta'"). Off unless the user set it.
os.environ.setdefault("USE_HUB_KERNELS", "0")

# name -> module that defines it; `loka.__getattr__` imports the module on first use.
_EXPORTS: dict[str, str] = {
    # attribute
    "rank": "attribution", "Ranking": "attribution", "Component": "attribution",
    "tokenize_facts": "attribution", "tokenize_passages": "attribution",
    # edit
    "AblationPlan": "loka.engine", "EditSession": "loka.engine", "commit": "loka.engine",
    "preview": "loka.engine", "mean_activations": "loka.engine",
    "unlearn": "loka.methods", "task_from_world": "loka.methods", "UnlearnTask": "loka.methods",
    "UnlearnResult": "loka.methods",
    # verify
    "verify": "loka.verify.verifier", "VerifyReport": "loka.verify.verifier",
    "VerifySettings": "loka.verify.measure", "first_token_accuracy": "loka.evaluate",
    # report
    "write_report": "loka.report",
    # whole runs
    "compare": "loka.workflows.compare", "compare_user": "loka.workflows.user_data",
    "user_data": "loka.workflows.user_data", "run_demo": "loka.workflows.demo",
    "run_sequential": "loka.workflows.sequential", "update_facts": "loka.workflows.update",
    # worlds and files
    "load_world": "loka.world.build", "load_hf": "loka.io.models", "load_bridge": "loka.io.models",
    "smollm2": "loka.io.real",
    "load_facts": "loka.io.data", "load_passages": "loka.io.data", "FactRecord": "loka.io.data",
    "save_checkpoint": "loka.io.checkpoint", "check_provenance": "loka.io.provenance",
    "LokaError": "loka.errors",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'loka' has no attribute {name!r}")
    module = importlib.import_module(_EXPORTS[name])
    value = getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
