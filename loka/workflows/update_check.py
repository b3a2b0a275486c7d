"""Checks of a model update (`loka.workflows.update`): new answer given, old one gone — and not hiding.

- `answer_rates`: first-token accuracy of the old and the new value on the training templates
  and on held-out templates the edit never saw.
- `relearn_other_facts`: the fair relearning attack for an update. A copy of the model is
  fine-tuned (all parameters, AdamW, whole-sentence loss) on the edited people's facts about
  their *other* attributes (training, question and novel templates) — data an attacker could
  plausibly hold, which never states the old value. If the old value was only masked, pulling
  the person's representation back towards its training state brings it back. The attacker's
  result is the highest old-value accuracy on the curve (step 0 included); the same curve for
  a *control* value (one neither old nor new) is the yardstick of what the attack's drift alone
  produces.
- `probe_old_value`: per layer, a logistic-regression probe (scikit-learn) reads the attribute
  from the residual stream at the last prompt token; it is trained on *other* people, so it can
  only read a value the representation still encodes. Chance is its accuracy on holdout people
  (values the model never learned). Run it on the model before the edit too: that shows the
  probe can read the old value when it is there.

Example:
    >>> answer_rates(model, tok, edits)            # doctest: +SKIP
    {'train': {'old': 0.0, 'new': 1.0}, 'heldout': {'old': 0.0, 'new': 1.0}}
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from loka.evaluate import first_token_accuracy
from loka.io.data import FactRecord
from loka.workflows.update import FactEdit


def answer_rates(model: Any, tokenizer: Any, edits: Sequence[FactEdit]) -> dict[str, dict[str, float]]:
    """``{"train"|"heldout": {"old": acc, "new": acc}}`` (first answer token, argmax)."""
    out: dict[str, dict[str, float]] = {}
    for split, heldout in (("train", False), ("heldout", True)):
        if heldout and not any(e.heldout_prompts for e in edits):
            continue
        out[split] = {}
        for which in ("old", "new"):
            pairs = [{"prompt": p, "answer": getattr(e, which)} for e in edits
                     for p in (e.heldout_prompts if heldout else e.prompts)]
            out[split][which] = round(first_token_accuracy(model, tokenizer, pairs), 4)
    return out


def _facts(edits: Sequence[FactEdit], which: str) -> list[dict[str, str]]:
    return [{"prompt": p, "answer": getattr(e, which)} for e in edits
            for p in (*e.prompts, *e.heldout_prompts)]


def relearn_other_facts(model: Any, tokenizer: Any, edits: Sequence[FactEdit],
                        attack_facts: Sequence[FactRecord], *, steps: int = 30, lr: float = 1e-3,
                        eval_every: int = 5, seed: int = 0) -> dict[str, Any]:
    """Fine-tune a copy on ``attack_facts`` (the verifier's `finetune_attack`); old-value (and
    control-value) accuracy on the edited prompts over the steps."""
    from loka.verify.measurements.relearn import finetune_attack

    which = ("old", "control") if all(e.control for e in edits) else ("old",)
    curve = finetune_attack(model, tokenizer, attack_facts,
                            {f"{w}_accuracy": _facts(edits, w) for w in which} | {"trained": attack_facts},
                            steps=steps, lr=lr, eval_every=eval_every, seed=seed)
    trained = curve.pop("trained")[-1]
    best = {f"best_{w}": max(curve[f"{w}_accuracy"]) for w in which}
    return {**curve, **best, "attack_fact_accuracy": trained, "n_attack_facts": len(attack_facts)}


@torch.inference_mode()
def _last_token_states(model: Any, tokenizer: Any, prompts: Sequence[str]) -> np.ndarray:
    """``[layer prompt d_model]`` hidden states at each prompt's last token (every block)."""
    from attribution.data import tokenize_passages

    b = tokenize_passages(tokenizer, list(prompts), scored=False)  # states at the last token
    out = model(b.input_ids, attention_mask=b.attention_mask, output_hidden_states=True)
    last = b.attention_mask.sum(-1) - 1
    rows = torch.arange(len(prompts))
    return np.stack([h[rows, last].float().numpy() for h in out.hidden_states[1:]])


def probe_old_value(model: Any, tokenizer: Any, edits: Sequence[FactEdit], train: Sequence[Any],
                    chance: Sequence[Any]) -> list[dict[str, Any]]:
    """Per layer: how often a probe trained on ``train`` facts reads the old (or new) value.

    ``train`` and ``chance`` are facts of the edited attribute (objects with ``prompt`` and
    ``answer``) of other people (the edited subjects are dropped) and of holdout people.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    subjects = {e.subject for e in edits}
    train = [f for f in train if getattr(f, "subject", None) not in subjects]
    test = [(p, e) for e in edits for p in (*e.prompts, *e.heldout_prompts)]
    x_train = _last_token_states(model, tokenizer, [f.prompt for f in train])
    x_test = _last_token_states(model, tokenizer, [p for p, _ in test])
    x_chance = _last_token_states(model, tokenizer, [f.prompt for f in chance])
    y_train, y_chance = [f.answer for f in train], [f.answer for f in chance]
    layers = []
    for layer in range(x_train.shape[0]):
        probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500, C=0.1))
        with threadpool_limits(1):
            probe.fit(x_train[layer], y_train)
            pred, pred_chance = probe.predict(x_test[layer]), probe.predict(x_chance[layer])
        layers.append({"layer": layer,
                       "old_rate": round(float(np.mean([p == e.old for p, (_, e) in zip(pred, test, strict=True)])), 4),
                       "new_rate": round(float(np.mean([p == e.new for p, (_, e) in zip(pred, test, strict=True)])), 4),
                       "chance": round(float(np.mean(pred_chance == np.array(y_chance))), 4)})
    return layers
