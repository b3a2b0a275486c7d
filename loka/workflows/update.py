"""Model update: replace an outdated fact (a person's employer) through LOKA's localized machinery.

1. Rank every neuron and head for the *old* fact against the retain facts (attribution
   patching, on a bridge over a copy of the model): the components that carry the old value.
2. Mask the parameters the top-``k`` own (`ParamMask`); every other weight stays bit-identical.
3. Optimise only those entries (the shared loop `loka.methods.loop.optimise`, AdamW without
   weight decay, divergence guard) on::

       unlikelihood(old first token) + NLL(new answer)
           + retain_weight * (NLL(retain minibatch) + NLL(the person's other facts))

   until every training prompt answers the new value and none the old one.

`loka.workflows.update_check` verifies the result: the new answer on training and held-out templates, the
old one not recoverable by fine-tuning on the person's other facts, nor by a linear probe.

Example:
    >>> edits = edits_from_world(art.world, n=2)                                  # doctest: +SKIP
    >>> result = update_facts(model, tok, edits, retain=retain_facts, k=64)        # doctest: +SKIP
    >>> result.new_accuracy, result.old_accuracy                                   # doctest: +SKIP
    (1.0, 0.0)
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from attribution.data import FactBatch, tokenize_facts
from loka.errors import LokaError
from loka.io.data import FactRecord


@dataclass(frozen=True)
class FactEdit:
    """Replace ``subject``'s ``attribute`` value ``old`` by ``new``.

    ``prompts`` are the training templates (edited on), ``heldout_prompts`` templates the edit
    never sees (checked only); ``others`` are the subject's facts about other attributes;
    ``control`` is a third value of the attribute, the yardstick of the relearning check.
    """

    subject: str
    attribute: str
    old: str
    new: str
    prompts: tuple[str, ...]
    heldout_prompts: tuple[str, ...] = ()
    others: tuple[FactRecord, ...] = ()
    control: str = ""

    def __post_init__(self) -> None:
        if self.old == self.new:
            raise LokaError(f"{self.subject}: the new {self.attribute} equals the old one ({self.old!r})")
        if not self.prompts:
            raise LokaError(f"{self.subject}: an edit needs at least one prompt")


@dataclass
class UpdateResult:
    """What the update did: components, weights changed, accuracies on the training prompts."""

    components: list[str]
    params_changed: int
    steps: int
    old_accuracy: float
    new_accuracy: float
    diverged: bool = False
    log: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def edits_from_world(world: Any, n: int = 2, attribute: str = "employer",
                     split: str = "retain_train", seed: int = 0) -> list[FactEdit]:
    """``n`` people of ``split`` get a new ``attribute`` value that other people hold.

    Their old value is also held by someone else, so a probe trained on other people has both
    values as classes (otherwise "the probe cannot read it" would be vacuous).
    """
    rng = random.Random(f"update-{seed}")
    people = world.people_in("retain_train", "retain_eval")
    counts = Counter(p.value(attribute) for p in people)
    chosen = [p for p in world.people_in(split) if counts[p.value(attribute)] >= 2][:n]
    if len(chosen) < n:
        raise LokaError(f"only {len(chosen)} people of {split} share their {attribute} with another")
    common = [v for v, c in counts.most_common() if c >= 2]
    facts = {kind: world.facts(split, kind) for kind in ("train", "qa")}
    edits = []
    for p in chosen:
        new, control = rng.sample([v for v in common if v != p.value(attribute)], 2)
        edits.append(FactEdit(p.name, attribute, p.value(attribute), new,
                              tuple(f.prompt for f in _mine(facts["train"], p.name, attribute)),
                              tuple(f.prompt for f in _mine(facts["qa"], p.name, attribute)),
                              tuple(FactRecord(f.prompt, f.answer, f.subject, f.attribute)
                                    for f in _mine(facts["train"], p.name, attribute, False)), control))
    return edits


def _mine(facts: Sequence[Any], subject: str, attribute: str, same: bool = True) -> list[Any]:
    """``subject``'s facts about ``attribute`` (``same``) or about every other attribute."""
    return [f for f in facts if f.subject == subject and (f.attribute == attribute) == same]


def edit_batch(tokenizer: Any, edits: Sequence[FactEdit], which: str, heldout: bool = False) -> FactBatch:
    """The edits' prompts with their ``old`` or ``new`` answers, tokenised."""
    pairs = [(p, getattr(e, which)) for e in edits for p in (e.heldout_prompts if heldout else e.prompts)]
    return tokenize_facts(tokenizer, [p for p, _ in pairs], [a for _, a in pairs])


def _facts_batch(tokenizer: Any, facts: Sequence[FactRecord]) -> FactBatch:
    return tokenize_facts(tokenizer, [f.prompt for f in facts], [f.answer for f in facts])


def update_facts(model: Any, tokenizer: Any, edits: Sequence[FactEdit], retain: Sequence[FactRecord],
                 *, k: int = 256, kinds: str = "neuron", steps: int = 300, lr: float = 1e-3,
                 retain_weight: float = 3.0, retain_batch: int = 128, old_prob: float = 0.01,
                 seed: int = 0) -> UpdateResult:
    """Edit ``model`` in place so that every edit's prompts answer ``new`` (module docstring).

    Stops once every training prompt answers ``new`` and the old value's mean probability is at
    most ``old_prob``. ``retain`` facts about an edited (subject, attribute) are dropped: they
    state the old value.
    """
    from loka.methods.localized.common import LocalizedConfig, analysis_bridge, forward, rank_on
    from loka.methods.localized.params import ParamMask

    if not edits:
        raise LokaError("no facts to update")
    if not 0 < old_prob < 1:
        raise LokaError(f"old_prob must lie in (0, 1), got {old_prob!r}")
    edited = {(e.subject, e.attribute) for e in edits}
    kept = [f for f in retain if (f.subject, f.attribute) not in edited]
    random.Random(seed).shuffle(kept)
    old, new = edit_batch(tokenizer, edits, "old"), edit_batch(tokenizer, edits, "new")
    retain_b = _facts_batch(tokenizer, kept)
    anchors = [f for e in edits for f in e.others]
    anchor_b = _facts_batch(tokenizer, anchors) if anchors else None
    cfg = LocalizedConfig(kinds=kinds)
    ranking = rank_on(analysis_bridge(model, tokenizer), old, retain_b, cfg, ablation="zero", sample=1024)
    components = ranking.top(k, cfg.kind_tuple())
    mask = ParamMask.of(model, components)
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    model.requires_grad_(False)
    for p in mask.trainable():
        p.requires_grad_(True)
    before = mask.snapshot()
    try:
        outcome = _optimise(model, mask, old, new, retain_b, anchor_b, steps, lr, retain_weight,
                            retain_batch, forward, -math.log1p(-old_prob))
    finally:
        for n, p in model.named_parameters():
            p.requires_grad_(flags[n])
            p.grad = None
    from loka.methods.localized.common import accuracy

    with torch.no_grad():
        old_acc, new_acc = accuracy(forward(model, old), old), accuracy(forward(model, new), new)
    return UpdateResult([str(c) for c in components], mask.n_changed(before), outcome.steps,
                        old_acc, new_acc, outcome.diverged, outcome.log, list(outcome.notes))


def _optimise(model: Any, mask: Any, old: FactBatch, new: FactBatch, retain: FactBatch,
              anchors: FactBatch | None, steps: int, lr: float, retain_weight: float,
              retain_batch: int, forward: Any, old_margin: float) -> Any:
    from loka.methods.localized.common import accuracy, answer_nll, forget_unlikelihood
    from loka.methods.loop import LoopSettings, StepLoss, optimise

    def chunks():
        while True:
            yield from retain.chunks(retain_batch)

    stream = chunks()

    def loss_fn(step: int) -> StepLoss:
        o_logits, n_logits = forward(model, old), forward(model, new)
        r_batch = next(stream)
        unlikely, new_nll = forget_unlikelihood(o_logits, old), answer_nll(n_logits, new)
        keep = answer_nll(forward(model, r_batch), r_batch)
        if anchors is not None:
            keep = keep + answer_nll(forward(model, anchors), anchors)
        parts = {"old_unlikelihood": float(unlikely.detach()), "new_nll": float(new_nll.detach()),
                 "retain_nll": float(keep.detach()), "old_accuracy": accuracy(o_logits.detach(), old),
                 "new_accuracy": accuracy(n_logits.detach(), new)}
        return StepLoss(unlikely + new_nll + retain_weight * keep, parts, forward_passes=4)

    def done(step: int, entry: dict[str, Any]) -> bool:
        # Flipping the argmax is not enough: the old value must also lose its probability.
        return (entry["new_accuracy"] >= 1.0 and entry["old_accuracy"] <= 0.0
                and entry["old_unlikelihood"] <= old_margin)

    return optimise(model, loss_fn, LoopSettings(lr=lr), total_steps=steps, params=list(mask.params.items()),
                    param_mask=mask.masks, on_step=done, limits={"retain_nll": 40.0},
                    progress=False, desc="update")
