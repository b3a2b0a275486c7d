"""`loka-deep`: remove the knowledge of the forget set, not just the answer.

Three stages, each optional (settings):

1. **Key reset** (``reset_keys``, `deep_keys`): the embedding rows of the tokens only the forget
   subjects' names use are redrawn like never-trained tokens — the retrain value of parameters
   only the forget data trained. The name then reaches the network like one it never saw.
1b. **Fact-lookup misdirection** (``lookup``, `deep_lookup`): when the key reset cannot apply (a
   pretrained model: no never-trained rows), the attributed lookup MLPs' slices at the subject
   tokens are trained to misdirect the subjects' states (RMU), retain states and budget kept,
   with the words after each name pulled to a stranger's predictions through the name's last
   token (the defaults since 2026-12-05: `deep_lookup`, item 6). On the worlds the key reset
   applies and this stage does not run, so its settings move no world number.
2. **Shared-key repair** (``cf_steps``, `deep_stages`): name tokens retain people share cannot be
   reset; their own input rows are trained so the model reads the forget sentences as it reads
   a stranger's (KL to itself with never-trained draws in their place), retain facts kept.
   ``reset_keys=False, cf_params="subject_embed_io", cf_name_weight=0.1, cf_name_loss="sq"`` is
   the route that needs no exclusive token (a real tokenizer's shared sub-words).
3. **Passage erasure** (``passage_steps``): unlikelihood on the forget passages' tokens, retain
   kept, until greedy continuation reproduces at most ``extract_target`` of them.

Why this shape (research on world seeds 0-2, BENCHMARKS.md): fact-lookup localization (Guo et al.
2024) points at the subject; the knowledge is keyed by the subject's tokens, and a parameter only
the forget data trained has a known retrain value. Distilling the lookup MLPs instead (the
Mechanistic-Unlearning route) cost retain accuracy (0.69-0.76) and left relearning at 0.24-0.47.
Caveats: stage 1 needs subject names that own tokens (true in the embedded world, whose tokenizer
was trained on its corpus; rarely in a pretrained model); retain people the method cannot see
who share a reset token lose their facts (4-6 of 60 retain-eval people per seed); passage
membership inference alone is not fixed.

Example:
    >>> result = unlearn(art.base_dir, task_from_world(art), method="loka-deep")   # doctest: +SKIP
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal

import torch

from attribution.data import prefix_ids
from loka.methods.config import MethodConfig, knob
from loka.methods.localized.deep_keys import KeyScope, key_reset
from loka.methods.localized.deep_lookup import lookup_misdirection
from loka.methods.localized.deep_rows import Rows, build_rows, fact_rows, subject_mask
from loka.methods.localized.deep_stages import passage_erasure, shared_key_repair
from loka.methods.registry import register
from loka.methods.task import UnlearnResult, UnlearnTask


@dataclass(frozen=True)
class Config(MethodConfig):
    reset_keys: bool = knob(True, help="stage 1: redraw the forget names' exclusive token embeddings")
    key_scope: KeyScope = knob("subject", help="subject: name tokens; words: whole-word ones; all: any forget-only token")
    reset_output: bool = knob(True, help="redraw the output-embedding rows too (the names' own likelihood)")
    cf_steps: int = knob(20, ge=0, help="stage 2 steps (0: skip)")
    cf_lr: float = knob(1e-2, gt=0, help="stage 2 learning rate")
    cf_params: str = knob("subject_embed", help="subject_embed, subject_embed_io, mlp:0,1, all, or joined with +")
    cf_retain_weight: float = knob(1.0, ge=0, help="weight of the retain CE in stage 2")
    cf_batch: int = knob(64, ge=1, help="forget sentences per stage-2 step")
    cf_focus_batch: int = knob(32, ge=0, help="retain facts that use a shared token, per step")
    cf_name_weight: float = knob(0.0, ge=0, help="pull the subject tokens' own log-prob to an unseen token's")
    cf_name_loss: Literal["hinge", "sq"] = knob("hinge", help="hinge: only down; sq: both ways")
    passage_steps: int = knob(60, ge=0, help="stage 3 steps at most (0: skip)")
    passage_lr: float = knob(1e-3, gt=0, help="stage 3 learning rate")
    passage_params: str = knob("mlp", help="parameters stage 3 trains (mlp, mlp:0,1, all, ...)")
    retain_weight: float = knob(1.0, ge=0, help="weight of the retain CE in stage 3")
    retain_batch: int = knob(64, ge=1, help="retain rows per step")
    extract_prefix: int = knob(8, ge=1, help="prefix tokens of the extraction check")
    extract_target: float | None = knob(0.2, ge=0, le=1, help="stop stage 3 at this extraction rate")
    check_every: int = knob(5, ge=1, help="steps between extraction checks")
    lookup: Literal["auto", "on", "off"] = knob("auto", help="fact-lookup misdirection (auto: when the key reset could not apply)")
    lookup_layer: int = knob(8, help="block whose output is steered (negative: from the top)")
    lookup_k: int = knob(1024, ge=1, help="lookup neurons (blocks 0..layer) whose slices train")
    lookup_contrast: float = knob(1.0, ge=0, help="retain weight of the lookup attribution contrast")
    lookup_scale: float = knob(1.5, gt=0, help="(random) steering norm over the subject states' mean norm")
    lookup_steer: Literal["random", "stranger"] = knob(
        "random", help="random: one scaled random direction (RMU); stranger: a made-up name's states there")
    lookup_lr: float = knob(1e-3, gt=0, help="lookup misdirection learning rate")
    lookup_retain_weight: float = knob(100.0, ge=0, help="weight of keeping retain states")
    lookup_keep_context: bool = knob(False, help="keep the forget sentences' states before the subject too")
    lookup_keep_subject: float = knob(1.0, ge=0, help="extra weight of keeping the retain facts' subject-position states")
    lookup_keep_generated: int = knob(0, ge=0, help="texts the base model writes itself whose states are kept too (0: none; retain_batch a step)")
    lookup_steps: int = knob(60, ge=0, help="lookup misdirection steps at most")
    lookup_target: float = knob(0.0, ge=0, le=1, help="stop at this forget first-token accuracy")
    lookup_target_margin: float = knob(
        2.0, ge=0, help="a forget fact counts as answered (for the target and the tries) until its answer's first "
                        "token is this many nats below the best other token (0: until it is not the argmax)")
    lookup_answer_hinge: float = knob(
        0.1, ge=0, help="weight of a hinge on each trained forget answer's first-token margin (down to "
                        "-lookup_target_margin, no further), trained through the forget names' own tokens only (0: off)")
    lookup_retain_hinge: float = knob(
        0.0, ge=0, help="weight of a hinge keeping each seen retain answer's first-token margin at or above its "
                        "base margin (capped at 1 nat), mean over the retain facts, in nats (0: off)")
    lookup_retain_budget: float = knob(0.95, ge=0, le=1, help="keep retain accuracy >= this x base")
    lookup_budget_margin: float = knob(
        0.0, ge=0, help="the retain budget counts only the retain facts the base answers by >= this many nats")
    lookup_directions: int = knob(
        8, ge=1, help="random directions drawn per try; the one whose push the seen retain answers feel least "
                      "is steered to (1: the first drawn)")
    lookup_probe: Literal["retain", "contrast", "forget"] = knob(
        "retain", help="how the directions are ranked: retain answers' pushed log-prob (retain), minus the "
                       "forget answers' (contrast), or the forget answers' alone, lowest first (forget)")
    lookup_name_rows: bool = knob(False, help="steer each forget subject's name alone too, keep each retain subject's")
    lookup_after_name: float = knob(
        1.0, ge=0, help="weight of steering the words after each forget name (name + short stems) to their states "
                        "after a stranger's name, the same words after each retain name kept (0: off)")
    lookup_after_layer: int | None = knob(
        None, help="with lookup_after_name: block whose output the after-name term steers and keeps (negative: "
                   "from the top; none: lookup_layer)")
    lookup_name_layer: int | None = knob(
        None, help="with lookup_after_name: also steer the name's own tokens in the after-name texts to their "
                   "stranger's after this (lower) block, and keep the retain names' texts there (negative: from "
                   "the top; none: off)")
    lookup_name_weight: float = knob(1.0, ge=0, help="with lookup_name_layer: weight of that name term")
    lookup_name_steps: int = knob(
        0, ge=0, help="with lookup_name_layer: steps of the name term alone (the keeps and the retain budget on) "
                      "after the forget target is reached")
    lookup_after_texts: int = knob(
        0, ge=0, help="with lookup_after_name: up to n continuations the base model writes itself after each name "
                      "instead of the fixed short stems (0: the stems)")
    lookup_after_facts: bool = knob(
        False, help="with lookup_after_name: each fact the method sees, written name-first (name + ': ' + the "
                    "fact's other words), is an after-name text too: forget ones steered, retain ones kept")
    lookup_after_batch: int = knob(
        0, ge=0, help="with lookup_after_name: n of the retain names' after-name rows kept each step, drawn from "
                      "their own random stream (0, or n >= the rows: every row every step)")
    lookup_after_teacher: float = knob(
        1.0, ge=0, help="weight of an output-level after-name term: on the base model's own short continuations "
                        "after each forget name, the edited model's next-token distributions at the words after the "
                        "name pulled (KL) to the base model's after the name's stranger (0: off)")
    lookup_teacher_source: Literal["sampled", "stems"] = knob(
        "sampled", help="with lookup_after_teacher: the texts — sampled continuations of each name (sampled), or "
                        "each fixed short stem after the name and the base model's greedy words after it (stems)")
    lookup_teacher_texts: int = knob(2, ge=1, help="with lookup_after_teacher, sampled: continuations per forget name")
    lookup_teacher_plain: bool = knob(
        True, help="with lookup_after_teacher, sampled: only continuations that neither extend the name's last "
                    "word nor name someone else mid-sentence (a capitalised word), the first of 4x as many samples")
    lookup_teacher_tokens: int = knob(8, ge=1, help="with lookup_after_teacher: new tokens per continuation")
    lookup_teacher_routed: bool = knob(
        True, help="with lookup_after_teacher: the teacher term trains the lookup slices only through the forget "
                    "name's own tokens (gradient routing by position): it changes how the name is read, not what "
                    "the slices compute at the words after it")
    lookup_teacher_last: bool = knob(
        True, help="with lookup_teacher_routed: only through the name's last token (where the model has put the "
                    "whole name together), not its every token")
    lookup_teacher_steps: int = knob(
        0, ge=0, help="with lookup_after_teacher: the teacher term leaves the tries' loss and, once they end, trains "
                      "for up to n steps, alone or (lookup_teacher_joined) with every term (the keeps and the retain budget on; "
                      "0: the teacher in every step)")
    lookup_teacher_joined: bool = knob(
        False, help="with lookup_teacher_steps: the phase trains every term of the tries' loss with the teacher "
                    "term, not the teacher alone")
    lookup_teacher_hold: bool = knob(
        False, help="with lookup_teacher_steps: a phase step that takes the forget facts' accuracy above where the "
                    "phase began is undone and ends the phase")
    lookup_teacher_fallback: bool = knob(
        True, help="with lookup_after_teacher in the tries: a try that stops at the retain budget before the "
                    "target goes on from its own weights without the teacher term (the keeps and the budget on, "
                    "up to lookup_steps more steps) before its direction is dropped")
    lookup_teacher_keep: float = knob(
        0.0, ge=0, help="with lookup_after_teacher: weight of keeping the base model's predictions on the same texts "
                        "after each retain name (KL, lookup_teacher_batch rows a step; 0: off)")
    lookup_teacher_batch: int = knob(32, ge=1, help="with lookup_teacher_keep: retain rows kept a step")
    lookup_per_subject: bool = knob(
        False, help="one steering direction per forget subject (each the best-probed of lookup_directions of its "
                    "own) instead of one shared by all, so a relearned subject does not unlock the others "
                    "(steer=random only)")
    lookup_tries: int = knob(
        3, ge=1, help="random directions to try: one stopped by the retain budget before forgetting is "
                      "replaced (steer=stranger: one try)")


def deep_unlearn(model: Any, tokenizer: Any, task: UnlearnTask, cfg: Config, seed: int
                 ) -> tuple[list[dict[str, Any]], list[Any]]:
    """Edit ``model`` in place, stage by stage: their log entries and loop outcomes."""
    gen = torch.Generator().manual_seed(seed)
    t0, log, outcomes = time.perf_counter(), [], []
    stamp = lambda d: log.append(d | {"t": round(time.perf_counter() - t0, 2)})  # noqa: E731
    forget = list(task.forget)
    f_rows, f_offsets, f_texts = fact_rows(tokenizer, [f.prompt for f in forget], [f.answer for f in forget])
    r_facts, _, r_texts = fact_rows(tokenizer, [f.prompt for f in task.retain], [f.answer for f in task.retain])
    retain = Rows.cat([r_facts] + ([build_rows(tokenizer, task.retain_passages)[0]] if task.retain_passages else []))
    reset_ids: list[int] = []
    if cfg.reset_keys:
        reset_ids, entry = key_reset(model, tokenizer, task.forget_subjects, f_texts + list(task.forget_passages),
                                     r_texts + list(task.retain_passages), cfg.key_scope, gen, cfg.reset_output)
        stamp(entry)
    if (cfg.lookup == "on" or cfg.lookup == "auto" and cfg.reset_keys and not reset_ids) and cfg.lookup_steps \
            and forget and task.retain:
        outcome, entry = lookup_misdirection(model, tokenizer, cfg, gen, forget, task.retain)
        outcomes += [outcome] if outcome else []
        stamp(entry)
    if cfg.cf_steps and forget:
        f_subj = subject_mask(f_offsets, f_texts, [f.subject for f in forget], f_rows.ids.shape[1])
        outcome, entry = shared_key_repair(model, cfg, gen, f_rows, f_subj, reset_ids, retain)
        outcomes += [outcome] if outcome else []
        stamp(entry)
    if cfg.passage_steps and task.forget_passages:
        outcome, entry = passage_erasure(model, cfg, gen, build_rows(tokenizer, task.forget_passages)[0], retain,
                                         len(prefix_ids(tokenizer)))
        outcomes.append(outcome)
        stamp(entry)
    return log, outcomes


@register("loka-deep", Config, family="loka", cost=30,
          summary="remove the knowledge: reset the forget names' own keys, repair shared ones, erase passages")
def loka_deep(model: Any, tokenizer: Any, task: UnlearnTask, cfg: Config, *, seed: int,
              progress: bool) -> UnlearnResult:
    """The three stages on the task (module docstring)."""
    t0 = time.perf_counter()
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    model.eval()
    log, outcomes = deep_unlearn(model, tokenizer, task, cfg, seed)
    changed = int(sum(int((v != before[k]).sum()) for k, v in model.state_dict().items()))
    diverged = next((o for o in outcomes if o.diverged), None)
    return UnlearnResult(
        method="loka-deep", model=model, tokenizer=tokenizer, settings=cfg.to_dict(),
        seconds=time.perf_counter() - t0, params_changed=changed,
        steps=sum(o.steps for o in outcomes), forward_passes=sum(o.forward_passes for o in outcomes),
        backward_passes=sum(o.backward_passes for o in outcomes), diverged=diverged is not None,
        diverged_step=diverged.diverged_step if diverged else None, log=log,
        notes=[str(entry) for entry in log] + [n for o in outcomes for n in o.notes])
