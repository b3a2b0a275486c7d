"""Default settings of every baseline, in one place, so a reader can re-run the reported table.

Tuned by hand on the ``default`` world (``python -m loka.methods.baselines.table`` prints the
table): each lowers forget accuracy substantially while keeping as much retain-eval accuracy as it
can, without a search per world. Settings not listed take `loka.methods.settings.TrainConfig`'s defaults.

>>> DEFAULTS["gradient_ascent"]["alpha"]
0.5
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

# forget_target 0.1 (with eval_every 1) stops each optimisation once first-token accuracy on the
# forget facts reaches the seed's "excellent" threshold: going further only costs retain accuracy.
_STOP = {"forget_target": 0.1, "eval_every": 1}
_DEFAULTS: dict[str, dict[str, Any]] = {
    # The seed's algorithm: AdamW on alpha * (-forget NLL) + (1 - alpha) * retain NLL.
    "gradient_ascent": {"alpha": 0.5, "lr": 1e-4, "epochs": 10, "batch_size": 32, **_STOP},
    # -gamma * forget NLL + alpha * retain NLL; a heavier retain weight than GA's 1:1 keeps more.
    "grad_diff": {"gamma": 1.0, "alpha": 5.0, "lr": 1e-4, "epochs": 10, "batch_size": 32, **_STOP},
    # NPO on the forget answers (frozen reference = the model before unlearning) + alpha * retain NLL.
    "npo": {"beta": 0.1, "gamma": 1.0, "alpha": 5.0, "lr": 1e-4, "epochs": 10, "batch_size": 32, **_STOP},
    # Fine-tune on the forget set, then base - scale * (finetuned - base); with forget_target the
    # smallest of scale * k / 8 reaching it is used.
    "task_vector": {"scale": 4.0, "lr": 3e-4, "epochs": 10, "batch_size": 32, "forget_target": 0.1},
    # Fine-tune on counter-facts (another value of the same attribute) + alpha * retain NLL.
    "counterexample": {"alpha": 1.0, "lr": 3e-4, "epochs": 10, "batch_size": 32, **_STOP},
    "retrain": {},
    "output_suppression": {"refusal": "I can't share information about that person."},
}

DEFAULTS: MappingProxyType[str, MappingProxyType[str, Any]] = MappingProxyType(
    {name: MappingProxyType(d) for name, d in _DEFAULTS.items()})
