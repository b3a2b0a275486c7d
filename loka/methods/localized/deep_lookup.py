"""`loka-deep`'s fallback for a pretrained model: misdirect the fact lookup at the subject tokens.

When stage 1 cannot apply (a pretrained model has no never-trained embedding rows to draw a
retrain value from, and its tokenizer gives few names tokens of their own), the knowledge is
still *looked up* at the subject's tokens: Mechanistic Unlearning (Guo et al. 2024, arXiv
2410.12949) finds the attribute retrieval in MLPs read at the subject positions, and editing
those beats editing where the answer is written (what `loka-ft` does) on prompt-format
robustness. RMU (Li et al. 2024, arXiv 2403.03218) removes knowledge by steering the forget
text's residual stream at a middle layer towards a fixed, scaled random direction, training
the MLPs below it, while keeping retain activations where they were. This stage joins the two:

1. **Where** (fact-lookup attribution): every MLP neuron in blocks ``0..layer`` is scored by
   attribution patching of the answer's log-probability *at the subject's tokens only*,
   ``|a . dlogp/da|`` summed over those positions (the forget facts' subject spelled in ``prompt
   + answer``: the first name that ends the prompt and the surname that answers it), the same on
   the retain facts; the ``k`` neurons with the largest ``forget - retain_weight x retain``
   (means) are the lookup slices (their input rows and output columns, `SliceDeltas`).
2. **What** (representation misdirection): only those slices train, on
   ``mean_subject ||h_layer - c u||^2 + retain_weight x mean_keep ||h_layer - h_layer^base||^2``
   (each over the base model's mean square norm at those positions), ``u`` a seeded random unit
   vector and ``c = scale x`` the base subject states' mean norm (``steer="stranger"``: instead of
   ``c u``, each subject token's target is a made-up name's state in the same sentence,
   `deep_stranger`, the term over its starting value); "keep" is every position of the
   retain facts, plus (``keep_subject``, a weight) the mean over the retain facts' own subject
   tokens alone (where their lookup is read), (``keep_context``) the forget sentences' own
   words before the subject, so the edit changes how the name is read, not how the sentence
   around it is, and (``keep_generated``) every position of texts the base model wrote itself
   about characters, people and places (`deep_selftext`: names the retain facts do not name).
   The forward stops at
   block ``layer``: nothing above it is computed or changed.
3. **When to stop**: after every step, first-token accuracy on the forget facts and on the
   retain facts the method sees; it stops once forget <= ``target``, and a step that takes
   retain accuracy below ``retain_budget`` x the base's is undone and ends the stage (the
   method's own retain budget; it never sees held-out forms or unseen subjects; with
   ``budget_margin`` it counts only the retain facts the base answers by that many nats). A
   random direction that ends at the budget before forgetting is dropped, the weights go back
   to the base's and another is drawn (``tries``; the stranger target has none to redraw); the
   try that forgot most is kept. With ``target_margin`` m (2 by default), a trained fact counts as
   answered until its answer's first token is m nats below the best other token: the stage
   stops at the target with every trained answer that far down, not with the last one gone by a
   hair (what the tries do on SmolLM2: screen 40), since a held-out wording of the same fact sits
   near its trained one; a budget stop once every trained answer is gone keeps the try. The
   misdirection alone does not get there (further along the direction is not further from the
   answer: on a tiny Llama 80 steps leave the answers 0.4 nats down; SmolLM2 screen 25); with
   ``answer_hinge`` w (0.1 by default) the loss adds w x the mean of max(0, margin + m) over the trained
   answers' first tokens (over its start), trained through the forget names' own tokens only
   (`SliceDeltas.routed`): the answer falls because what is read at the name changes, and no
   further than m below the top token (calibrated, not ascent). Measured on SmolLM2 with the
   after-name term at 2.0, not adopted (BENCHMARKS.md screens 46-47): at w 1.0 every try broke the
   retain budget after 2 steps (at the prompt's last token, the name's, it acts like an
   output-level edit); at w 0.1, m 1.0 a held-out question stayed answered by 0.08 nats; at m 2.0
   seed 1 met every real-model column and seed 2 still answered Barty Crouch's reverse query.
   With ``retain_hinge`` w (off) the loss adds w x the mean of max(0, floor - margin) over the
   seen retain facts' first answer tokens, each floor its base margin capped at
   `RETAIN_HINGE_CAP` nats: the keeps hold states at block ``layer``, the budget counts answers
   only once flipped, and the facts an edit flips first are those the base answers by a few
   hundredths of a nat (on SmolLM2 3 of the 57 seen and 3 of the 60 neighbour facts). Measured
   on SmolLM2 seed 0 beside screen 48's setting, not adopted (BENCHMARKS.md screens 49-50): at w
   10 it trains the seen answers up (-0.64 -> -0.20 nats in 20 steps) and the stage ran past 22
   minutes; at w 1 every seen fact stayed answered and Victor Frankenstein's neighbour facts were
   lost as without it.
4. **Which direction** (``directions``, 8 by default): RMU draws one random direction, and on
   SmolLM2 which one is drawn decides how far the edit spills onto other names
   (`bench.deep_real`). ``directions`` are drawn per try and the one kept is the one whose
   push the seen retain facts' answers feel least (`pushed_logp`: their subject states moved
   `PROBE_SHARE` of the way to its target, their answers' mean log-prob). The probe does not
   foresee the retain budget (on SmolLM2 seed 0 the first two tries' picks stopped there).
   ``probe="contrast"`` ranks by the retain answers' pushed log-prob minus the forget answers'
   (their subject states moved the same share: the direction that hits the forget facts hardest
   for what it costs the retain ones), ``probe="forget"`` by the forget answers' alone (both
   measured on SmolLM2 and not adopted: which 8 directions are drawn moved the spill at least as much
   as which of them the probe picked, BENCHMARKS.md round 9).
   The stranger target has no direction to choose; when no retain fact spells its subject the
   first draw is kept.
5. **The name alone** (``name_rows``, off; measured and not adopted): every forget subject's
   name as a text of its own (BOS + name) is steered with the facts' subject tokens, and every
   retain subject's name alone kept, so the edit also reaches the name where a query starts
   with it ("Barty Crouch works at the Ministry of").
6. **The words after the name** (``after_name``, a weight, 1 by default): a query that starts with the
   name has read it into the words after it by the steered block (`bench.deep_trace`: on
   SmolLM2, with Barty Crouch's name tokens steered, its reverse query still answered until the
   words after the name read a stranger's), so each forget name followed by short stems
   (`deep_stranger.STEMS`: " is", " was", ...) is a text of its own, and the states of the stem's
   words after the steered block are pulled to the base model's states of the same words after
   the name's stranger (the term over its starting value); each retain name with the same stems
   is kept at every position. On SmolLM2 it tied with weight 0 on the seen rule (BENCHMARKS.md
   round 10) and missed a confirmation bar on seeds 3-5 on its mean and its worst seed; a second bar written
   before its runs, on seeds 6-8 and all nine draws together, it met (round 14: neighbours kept
   >= 0.95 on 8 of 9 draws against 6, mean 0.972 against 0.948; fewer held-out and reverse
   queries answered), and it became the default.
   With ``after_texts`` n (off), the words after each name, forget and retain, are up to n
   continuations the base model samples itself after ``BOS + name`` (`deep_selftext.name_continuations`,
   16 tokens; empty ones and retain ones that spell a forget word dropped) instead of the stems:
   positions further after the name, where a query's answer is read ("... works at the Ministry
   of" is five tokens past the name; the stems reach one or two). Measured on SmolLM2
   and not adopted (BENCHMARKS.md round 11: forgot every reverse query but one over seeds 0-2,
   Barty Crouch's on all three, tied on the seen rule, kept 0.93 of the neighbours on seed 0).
   With ``after_batch`` n (off), each step keeps n of the retain names' after-name rows (drawn
   from their own random stream) instead of all of them (with ``after_texts`` 4, up to 128).
   Measured on SmolLM2 and not adopted (BENCHMARKS.md round 12: a step 12-19 % cheaper but more
   retain-budget stops; neighbours >= 0.95 on seeds 0-2, 0.88 on seed 3).

   With ``after_facts`` (off), the request's own facts the method sees are after-name texts too,
   written name-first (`deep_stranger.fact_stems`: "Barty Crouch: In the Harry Potter books, the
   Ministry official whose son was a Death Eater is called"): the forget ones steered, the retain
   ones kept — the whole fact, its relation's words after the name, without a query's wording.
   Tried on SmolLM2 and not adopted (BENCHMARKS.md round 16: seed 0's first two directions stopped
   at the retain budget with 14 and 5 of 32 trained facts left — the fact texts share their
   template words with the retain facts' — and the round was stopped unmeasured).
   With ``after_layer`` (off: ``layer``), the after-name term is measured after a block of its own,
   the subject tokens still steered after ``layer``. Tried on SmolLM2 and not adopted (BENCHMARKS.md
   screen 19: at block 6 under the default's block 8, Barty Crouch's reverse query still answered
   on seed 1, every neighbour kept — steering block 6 forgets it through the subject tokens).

   With ``after_teacher`` (a weight, 1 by default), an output-level term joins them: the base model's own
   short continuations after each forget name (``teacher_texts`` per name, ``teacher_tokens`` new
   tokens, their own random stream), and at each word after the name the edited model's
   next-token distribution is pulled to the base model's at the same word after the name's
   stranger (``KL(base after the stranger || edited)``, the term over its starting value; the whole
   model runs for it, only the lookup slices train). Who's Harry Potter (Eldan & Russinovich 2023,
   arXiv 2310.02238) fine-tunes towards the predictions made with the anchor terms replaced by
   generic ones; here the anchor is the name and the text is the model's own, so the target is
   what a reader who never knew the person would predict, not a state to match at one block.
   ``teacher_source="stems"``: the texts are each fixed stem after the name and the base model's
   greedy ``teacher_tokens`` words after it (`deep_selftext.stem_continuations`: "Lord Voldemort
   lived in" -> " a world of dark magic,"), instead of sampled continuations of the bare name
   (on SmolLM2 mostly loose text whose KL is the name's surface: "Viktor Krumpple"); with
   ``teacher_plain``, sampled texts that extend the name or name someone else mid-sentence are
   left out (`deep_selftext.names_another`: "Sirius Black (Dame Darthwynn"). With
   ``teacher_keep`` (a weight), the same texts after each retain name keep the base model's
   predictions (``KL(base || edited)``, ``teacher_batch`` rows a step, over the forget term's
   starting KL). With ``teacher_routed``, the teacher's KL trains the slices only through the
   forget name's own tokens (`SliceDeltas.routed`, gradient routing by position: Cloud et al.
   2024, arXiv 2410.04332): the words after the name still read it, but what the slices compute
   at those words is not trained, so the term changes how the name is read rather than how any
   name's continuation is; with ``teacher_last``, only through the name's last token, where a
   model puts a name's pieces together and looks up what it knows about the person (Geva et al.
   2023, arXiv 2304.14767; Meng et al. 2022, ROME), so names that share its first pieces ("B",
   "arty") are spared (screen 43: every column met on seeds 1 and 2, Barty Crouch's reverse query
   forgotten, on one direction at about the default's time; on seeds 0, 3, 4 and 5 a held-out
   question or the reverse query answered, or 0.930 of the neighbours kept). Measured on SmolLM2,
   not adopted (BENCHMARKS.md screens 28-36, round 21: routed, every column met on seeds 1 and 2,
   and on fresh seeds 2 held-out questions answered and 0.930 of the neighbours kept on seed 4;
   screen 37: at half weight, still a budget stop first on seeds 4 and 0, two held-out questions
   answered on seed 0).
   With ``teacher_steps`` n (off), the teacher term leaves the tries' loss — they run the objective
   without it, step for step — and trains for up to n steps after them, the keeps and the retain
   budget on (a budget stop ends that phase, not a direction); with ``teacher_joined`` the phase
   trains every term of the tries' loss with it, with ``teacher_hold`` a phase step that brings a
   trained fact back is undone and ends the phase (`LoopSettings.forget_ceiling`). Measured on
   SmolLM2 seed 1, not adopted (BENCHMARKS.md screens 38-41): alone, Barty Crouch's reverse query
   went and two of Viktor Krum's trained facts came back; held, not one step was taken (the tries
   stop with the last fact forgotten by a hair); joined, the reverse query went and Jack Sparrow's
   question form with it.
   With ``teacher_fallback`` (on by default; the teacher in the tries' loss), a try that stops at the retain
   budget before the target goes on from its own weights without the teacher term, the keeps and
   the budget on, for up to ``steps`` more (``teacher_fallbacks`` in the log); only if that stops at
   the budget too is its direction dropped. The teacher's steps are kept and the objective without
   it (the default before 2026-12-05), which reached the target on its first direction on every SmolLM2 draw, finishes the
   forgetting: the routed teacher's misses came on draws whose first direction stopped at the
   budget and whose second started again from the base (BENCHMARKS.md round 21). Measured on SmolLM2
   seed 0, not adopted then (screen 42): one direction, 45 steps instead of 68, every reverse query
   forgotten, but a held-out question still answered and a neighbour's question form lost.
   **The defaults since 2026-12-05** are screen 48's setting: the teacher (weight 1) on plain
   sampled texts, routed through each name's last token, with the fallback, the answer hinge at
   0.1 and the 2-nat target margin. Read as SmolLM2's tokenizer encodes a prompt (no BOS:
   `attribution.data.set_prefix`, its checkpoint's prefix) it forgot every trained, held-out and
   reverse form the base answers and kept >= 0.95 of the neighbours on seeds 0, 1, 2, 6, 7 and
   lost 3 of 42 neighbour facts on seed 8 (BENCHMARKS.md rounds R52, R53, R56); the previous
   defaults lost 3 on seed 2 read that way (R54). The settings and rounds above were measured
   with the previous defaults and SmolLM2 read after its BOS, ``<|im_start|>``.

   With ``name_layer`` N (off), the name's own tokens in those after-name texts are steered too,
   after the lower block N, to their stranger's word-aligned states there (weight ``name_weight``),
   and the retain names' after-name texts are kept after block N as well: what the words after
   the name read of it is the name's states below ``layer``. On SmolLM2's base model, Barty
   Crouch's reverse query goes once the name reads as a stranger's after block 4 (not after 6-8).
   With ``name_steps`` n (off), once the forget target is reached, up to n more steps train the
   name term alone, the keeps and the retain budget still on (the forget target stops the stage
   long before the name term gets far: BENCHMARKS.md screens 22-23).

7. **One direction per subject** (``per_subject``, off): each forget subject draws ``directions``
   of its own and its tokens go towards the best-probed of them, instead of every subject towards
   one shared direction. The relearning attack trains on half the forget subjects and tests the
   other half; Layered Unlearning (Qian et al. 2025, arXiv 2505.09500) finds that distinct
   inhibitory mechanisms for subsets keep relearning one subset from recovering the rest.
   Measured on SmolLM2 and not adopted (BENCHMARKS.md round 15: relearning lower by 1-2 of 17
   facts per seed, but 43-60 steps instead of 38-42, one trained fact left on seed 2 at the step
   limit, a held-out question answered on each seed, 0.93 of the neighbours on seed 1).

Why the subject tokens: the held-out question form and the reverse query ("Albus Dumbledore is
the headmaster of" -> "Hogwarts") share no wording with the trained sentences, only the
subject's name; an edit keyed to the name's states can reach them, an edit of the answer
position cannot (`loka-ft` keeps every reverse query on SmolLM2).

The stage's log entry (``result.log``, stage ``lookup_misdirection``) gives, per try and for the
name steps, each term of the loss at the first and the last step (``terms``: ``subject``,
``after_name``, ``name``, their sum ``misdirect``, and ``retain_shift``, the keeps before
``retain_weight``): which part of the joint objective got where, without a second run.

Example:
    >>> outcome, entry = lookup_misdirection(model, tok, cfg, gen, forget_facts, retain_facts)  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch import Tensor

from attribution.components import Component
from attribution.data import prefix_ids, tokenize_facts
from loka.engine import adapter_for
from loka.evaluate import first_token_hits, first_token_margins, logits_at, prompt_ends
from loka.methods.localized.deep_rows import (
    Rows,
    build_rows,
    fact_rows,
    rows_nll,
    subject_mask,
    subject_rows,
)
from loka.methods.localized.deep_rows import logits_at as rows_logits
from loka.methods.localized.deep_selftext import (
    avoid_words,
    name_continuations,
    self_texts,
    stem_continuations,
)
from loka.methods.localized.deep_stranger import (
    after_name,
    assign,
    fact_stems,
    fixed_stems,
    name_targets,
    stem_rows,
    strangers,
    twin_texts,
    word_targets,
)
from loka.methods.localized.params import SliceDeltas
from loka.methods.loop import LoopSettings, Outcome, StepLoss, optimise

# ``directions``: a candidate direction is tried by moving the seen retain facts' subject states a
# tenth of the way to its target (the edit is trained to keep them; what it lets through is small)
PROBE_SHARE = 0.1
# ``retain_hinge``: a seen retain answer's margin is kept at its base value up to this many nats (the facts
# an edit flips are those answered by a few hundredths of a nat: `bench.deep_real --margins`)
RETAIN_HINGE_CAP = 1.0


class _Reached(Exception):
    """Raised by the hook on block ``layer`` to end a forward pass there."""

    def __init__(self, hidden: Tensor) -> None:
        self.hidden = hidden


def _block_names(model: Any) -> tuple[list[str], list[str]]:
    """Per layer: the module whose input is the MLP's neuron activations, and the block."""
    adapter, n = adapter_for(model), int(model.config.num_hidden_layers)
    writes = [adapter.params(Component(layer, "neuron", 0)).write.param.rsplit(".", 1)[0] for layer in range(n)]
    return writes, [w.split(".mlp.")[0] for w in writes]


def _block(model: Any, layer: int) -> Any:
    return dict(model.named_modules())[_block_names(model)[1][layer]]


def hidden_at(model: Any, rows: Rows, layer: int) -> Tensor:
    """The residual stream after block ``layer`` ``[batch pos d]``; blocks above it never run.

    Rows of very different lengths (short stems beside whole sentences, `lookup_after_facts`) run
    as two batches, the short rows at their own width, when padding would be most of the batch
    (the same states at every real position; padded ones hold nothing to read either way)."""
    lengths = rows.mask.sum(-1)
    short = lengths <= rows.mask.shape[1] // 2
    if short.any() and not short.all() and rows.mask.numel() > 2 * int(lengths.sum()):
        parts = [short.nonzero().flatten(), (~short).nonzero().flatten()]
        states = [_hidden_at(model, rows.take(part), layer) for part in parts]
        out = states[0].new_zeros(len(rows), rows.mask.shape[1], states[0].shape[-1])
        for part, state in zip(parts, states, strict=True):
            out[part, : state.shape[1]] = state
        return out
    return _hidden_at(model, rows, layer)


def _hidden_at(model: Any, rows: Rows, layer: int) -> Tensor:
    block = _block(model, layer)

    def stop(module: Any, inputs: Any, output: Any) -> None:
        raise _Reached(output[0] if isinstance(output, tuple) else output)

    handle = block.register_forward_hook(stop)
    try:
        model.base_model(input_ids=rows.ids, attention_mask=rows.mask)
    except _Reached as reached:
        return reached.hidden
    finally:
        handle.remove()
    raise RuntimeError(f"block {layer} never ran")


@contextlib.contextmanager
def block_output_edited(model: Any, layer: int, edit: Callable[[Tensor], Tensor]) -> Iterator[None]:
    """Within the block, block ``layer``'s output states are ``edit(states)`` (``[batch pos d]``;
    ``edit`` must not change its argument in place)."""

    def hook(module: Any, inputs: Any, output: Any) -> Any:
        hidden = edit(output[0] if isinstance(output, tuple) else output)
        return (hidden, *output[1:]) if isinstance(output, tuple) else hidden

    handle = _block(model, layer).register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def lookup_scores(model: Any, rows: Rows, where: Tensor, layers: int) -> Tensor:
    """``[layers, d_mlp]``: mean over rows of ``sum_where |a . dlogp(scored tokens)/da|`` for every
    neuron of blocks ``0..layers-1`` (attribution patching to zero, at ``where`` only)."""
    modules = dict(model.named_modules())
    names = _block_names(model)[0][:layers]
    acts: list[tuple[Tensor, Tensor]] = []

    def keep(module: Any, inputs: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        delta = torch.zeros_like(inputs[0], requires_grad=True)  # its gradient is the activation's
        acts.append((inputs[0].detach(), delta))
        return (inputs[0] + delta, *inputs[1:])

    handles = [modules[n].register_forward_pre_hook(keep) for n in names]
    total = None
    try:
        for start in range(0, len(rows), 32):
            batch = rows.take(torch.arange(start, min(start + 32, len(rows))))
            acts.clear()
            with torch.enable_grad():
                logp = rows_logits(model, batch).log_softmax(-1)
                metric = logp.gather(-1, batch.ids[:, 1:][batch.score][:, None]).sum()
                grads = torch.autograd.grad(metric, [d for _, d in acts])
            w = where[start:start + len(batch), : batch.ids.shape[1]].float()[..., None]
            part = torch.stack([((a * g).abs() * w).sum((0, 1)) for (a, _), g in zip(acts, grads, strict=True)])
            total = part if total is None else total + part
    finally:
        for h in handles:
            h.remove()
    assert total is not None
    return total.detach() / len(rows)


def _accuracy(model: Any, batch: Any, margin: float = 0.0) -> float:
    """First-token accuracy on ``batch``; with ``margin`` > 0 a fact counts as answered until its
    answer is ``margin`` nats below the best other token (`first_token_margins`)."""
    with torch.no_grad():
        first = logits_at(model, batch, prompt_ends(batch))
    if margin > 0:
        return float((first_token_margins(first, batch.answer_ids[:, 0]) > -margin).float().mean())
    return float(first_token_hits(first, batch.answer_ids[:, 0]).float().mean())


def lookup_misdirection(model: Any, tokenizer: Any, cfg: Any, gen: torch.Generator,
                        forget: Sequence[Any], retain: Sequence[Any]) -> tuple[Outcome | None, dict[str, Any]]:
    """The fallback stage (module doc) on ``forget`` and ``retain`` facts; edits ``model`` in place."""
    n_layers = int(model.config.num_hidden_layers)
    clamp = lambda i: min(max(i if i >= 0 else n_layers + i, 0), n_layers - 1)  # noqa: E731
    layer = clamp(cfg.lookup_layer)
    a_layer = layer if cfg.lookup_after_layer is None else clamp(cfg.lookup_after_layer)  # ``after_layer``
    f_rows, f_offsets, f_texts = fact_rows(tokenizer, [f.prompt for f in forget], [f.answer for f in forget])
    f_subj = subject_mask(f_offsets, f_texts, [f.subject for f in forget], f_rows.ids.shape[1])
    r_rows, r_subj = subject_rows(tokenizer, retain)
    if not f_subj.any():
        return None, {"stage": "lookup_misdirection", "steps": 0, "note": "no forget subject found in its facts"}
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    model.requires_grad_(False)
    try:
        f_score = lookup_scores(model, f_rows, f_subj, layer + 1)
        r_score = lookup_scores(model, r_rows, r_subj | ~r_subj.any(-1, keepdim=True) & r_rows.mask.bool(), layer + 1)
        contrast = (f_score - cfg.lookup_contrast * r_score).flatten()
        top = contrast.topk(min(cfg.lookup_k, contrast.numel())).indices
        d_mlp = f_score.shape[1]
        components = [Component(int(i) // d_mlp, "neuron", int(i) % d_mlp) for i in top.tolist()]
        deltas = SliceDeltas.of(model, components)
        # The forget sentences' own context (the template before the subject) is kept too: the
        # edit may change how the name is read, not how the sentence around it is.
        f_ctx = f_rows.mask.bool() & ~f_subj if cfg.lookup_keep_context else torch.zeros_like(f_subj)
        n_pre = len(prefix_ids(tokenizer))  # the prefix token (BOS) first in every row, or none
        f_ctx[:, :n_pre] = False  # BOS: no weight below the steered block changes its state anyway
        with torch.no_grad():
            f_all = hidden_at(model, f_rows, layer).float()
            f_base, f_ctx_base = f_all[f_subj], f_all[f_ctx]
            r_where = r_rows.mask.bool()
            r_all = hidden_at(model, r_rows, layer).float()
            r_base = r_all[r_where]
            # the retain facts' own subject tokens: where their lookup is read, so where a direction's
            # push is tried on them (``directions``) and, with ``keep_subject``, kept with extra weight
            r_probe = r_subj & r_where
            r_name = r_probe if cfg.lookup_keep_subject else torch.zeros_like(r_subj)
            r_name_base = r_all[r_name]
            del r_all
            # text the base model writes itself (``keep_generated`` texts): other names kept too
            # (its own random streams: the steering direction and retain batches stay those without it)
            g_texts = self_texts(model, tokenizer, cfg.lookup_keep_generated, avoid=avoid_words(forget, retain),
                                 seed=gen.initial_seed()) if cfg.lookup_keep_generated else []
            g_keep: tuple[Rows, Tensor, Tensor, torch.Generator] | None = None
            if g_texts:
                g_rows = build_rows(tokenizer, g_texts)[0]
                g_where = g_rows.mask.bool()
                g_where[:, :n_pre] = False  # BOS
                g_keep = (g_rows, g_where, hidden_at(model, g_rows, layer).float()[g_where],
                          torch.Generator().manual_seed(gen.initial_seed() + 1))
            # ``name_rows``: each subject's name alone (BOS + name) — steered for the forget subjects,
            # kept for the retain ones — so the edit reaches the name where a query starts with it
            f_names = sorted({f.subject for f in forget if f.subject}) if cfg.lookup_name_rows else []
            n_keep: tuple[Rows, Tensor, Tensor] | None = None
            if f_names:
                n_rows, n_offsets = build_rows(tokenizer, f_names)
                n_subj = subject_mask(n_offsets, f_names, f_names, n_rows.ids.shape[1])  # all but BOS
                f_base = torch.cat([f_base, hidden_at(model, n_rows, layer).float()[n_subj]])
                r_names = sorted({f.subject for f in retain if f.subject} - set(f_names))
                if r_names:
                    k_rows, k_offsets = build_rows(tokenizer, r_names)
                    k_where = subject_mask(k_offsets, r_names, r_names, k_rows.ids.shape[1])
                    n_keep = (k_rows, k_where, hidden_at(model, k_rows, layer).float()[k_where])
            # ``after_name``: the words after each forget name that starts a text, steered to their states
            # after a stranger's name (what a query starting with the name has read of it by block ``layer``),
            # the same words after each retain name kept
            a_steer: tuple[Rows, Tensor, Tensor, Tensor] | None = None
            a_keep: tuple[Rows, Tensor, Tensor] | None = None
            # ``name_layer``: the name's own tokens in those texts steered to the stranger's after a lower block
            # (what the words after the name read of it below ``layer``), the retain names' texts kept there
            n_layer = None if cfg.lookup_name_layer is None else clamp(cfg.lookup_name_layer)
            nm_steer: tuple[Tensor, Tensor, Tensor] | None = None
            nm_keep: tuple[Rows, Tensor, Tensor] | None = None
            n_at = layer if n_layer is None else n_layer
            # ``after_teacher``: the base model's next-token distributions after the stranger, the target of
            # the edited model's after the forget name, on the base model's own continuations (own stream)
            teach: tuple[Rows, Tensor, Tensor, Tensor, Tensor] | None = None
            t_keep: tuple[Rows, Tensor, Tensor, Tensor, torch.Generator] | None = None  # ``teacher_keep``
            if cfg.lookup_after_teacher > 0:
                t_subjects = sorted({f.subject for f in forget if f.subject})
                if cfg.lookup_teacher_source == "stems":
                    t_pairs = stem_continuations(model, tokenizer, *fixed_stems(t_subjects), cfg.lookup_teacher_tokens)
                else:
                    t_pairs = name_continuations(model, tokenizer, t_subjects, cfg.lookup_teacher_texts,
                                                 seed=gen.initial_seed() + 5, new_tokens=cfg.lookup_teacher_tokens,
                                                 plain=cfg.lookup_teacher_plain)
                if t_pairs[0]:
                    s_rows, s_where, tt_rows, tt_where = after_name(
                        tokenizer, t_pairs[0], assign(t_pairs[0], strangers(forget, retain)), t_pairs[1])
                    teacher = _logits_where(model, tt_rows, tt_where).log_softmax(-1)
                    kl0 = _kl(teacher, _logits_where(model, s_rows, s_where)).clamp_min(1e-6)
                    # ``teacher_routed``: the name's own tokens (neither BOS nor the words after it)
                    t_name = s_rows.mask.bool() & ~stem_rows(tokenizer, *t_pairs)[1]
                    t_name[:, :n_pre] = False
                    if cfg.lookup_teacher_last:  # only the name's last token
                        last = (t_name * torch.arange(t_name.shape[1])).argmax(-1)
                        t_name = torch.zeros_like(t_name).scatter_(1, last[:, None], True) & t_name
                    teach = (s_rows, s_where, teacher, kl0, t_name)  # the term starts at 1
                    k_names = sorted({f.subject for f in retain if f.subject} - set(t_subjects))
                    if cfg.lookup_teacher_keep > 0 and k_names:  # the retain names' own predictions kept
                        k_pairs = stem_continuations(model, tokenizer, *fixed_stems(k_names), cfg.lookup_teacher_tokens,
                                                     avoid=avoid_words(forget, retain)) \
                            if cfg.lookup_teacher_source == "stems" else \
                            name_continuations(model, tokenizer, k_names, cfg.lookup_teacher_texts,
                                               seed=gen.initial_seed() + 6, new_tokens=cfg.lookup_teacher_tokens,
                                               avoid=avoid_words(forget, retain), plain=cfg.lookup_teacher_plain)
                        if k_pairs[0]:
                            kt_rows, kt_where = stem_rows(tokenizer, *k_pairs)
                            t_keep = (kt_rows, kt_where, _logits_where(model, kt_rows, kt_where).log_softmax(-1),
                                      kl0, torch.Generator().manual_seed(gen.initial_seed() + 7))
            a_gen = torch.Generator().manual_seed(gen.initial_seed() + 4)  # ``after_batch``: its own stream
            if cfg.lookup_after_name > 0:
                f_subjects = sorted({f.subject for f in forget if f.subject})
                k_subjects = sorted({f.subject for f in retain if f.subject} - set(f_subjects))
                avoid = avoid_words(forget, retain)  # what a kept retain text must not spell
                if cfg.lookup_after_texts:  # what the base model itself says after each name (its own stream)
                    f_pairs = name_continuations(model, tokenizer, f_subjects, cfg.lookup_after_texts,
                                                 seed=gen.initial_seed() + 2)
                    k_pairs = name_continuations(model, tokenizer, k_subjects, cfg.lookup_after_texts,
                                                 seed=gen.initial_seed() + 3, avoid=avoid)
                else:
                    f_pairs, k_pairs = fixed_stems(f_subjects), fixed_stems(k_subjects)
                if cfg.lookup_after_facts:  # ... and the request's own facts, written name-first
                    f_facts = fact_stems(forget)
                    k_facts = fact_stems([f for f in retain if f.subject in k_subjects], avoid)
                    f_pairs = (f_pairs[0] + f_facts[0], f_pairs[1] + f_facts[1])
                    k_pairs = (k_pairs[0] + k_facts[0], k_pairs[1] + k_facts[1])
                if f_pairs[0]:  # (every sampled continuation may have been empty)
                    a_names = assign(f_pairs[0], strangers(forget, retain))
                    a_rows, a_where, t_rows, t_where = after_name(tokenizer, f_pairs[0], a_names, f_pairs[1])
                    a_goal = hidden_at(model, t_rows, a_layer).float()[t_where]
                    a_ms = (hidden_at(model, a_rows, a_layer).float()[a_where] - a_goal).pow(2).sum(-1).mean()
                    a_steer = (a_rows, a_where, a_goal, a_ms)  # the term starts at 1
                    if n_layer is not None:  # ``name_layer``: the name's own tokens there, towards the stranger's
                        nm_where, nm_goal = name_targets(tokenizer, f_pairs[0], a_names, f_pairs[1],
                                                         hidden_at(model, t_rows, n_at).float())
                        nm_ms = (hidden_at(model, a_rows, n_at).float()[nm_where] - nm_goal).pow(2).sum(-1).mean()
                        nm_steer = (nm_where, nm_goal, nm_ms)
                if a_steer is not None and k_pairs[0]:
                    k_rows = stem_rows(tokenizer, *k_pairs)[0]
                    k_where = k_rows.mask.bool()  # the name and the words after it
                    k_where[:, :n_pre] = False  # BOS
                    a_keep = (k_rows, k_where, hidden_at(model, k_rows, a_layer).float()[k_where])
                    if nm_steer is not None:
                        nm_keep = (k_rows, k_where, hidden_at(model, k_rows, n_at).float()[k_where])
        f_ms, r_ms = f_base.pow(2).sum(-1).mean(), r_base.pow(2).sum(-1).mean()
        stranger = None
        if cfg.lookup_steer == "stranger":
            stranger = _stranger_goal(model, tokenizer, [f.subject for f in forget], forget, retain, f_texts,
                                      f_offsets, f_subj, layer)
            if f_names:
                stranger = torch.cat([stranger, _stranger_goal(model, tokenizer, f_names, forget, retain, f_names,
                                                               n_offsets, n_subj, layer)])
        push = cfg.lookup_scale * f_base.norm(dim=-1).mean()  # RMU's steering norm
        probes: list[list[float]] = []  # per try (and subject): each candidate's pushed retain log-prob
        f_probes: list[list[float]] = []  # ... and pushed forget log-prob (``probe`` contrast, forget)

        def drawn() -> list[Tensor]:
            """``directions`` random directions from the method's stream, at the steering norm."""
            us = [torch.randn(f_base.shape[-1], generator=gen) for _ in range(cfg.lookup_directions)]
            return [(push * u / u.norm()).to(f_base.dtype) for u in us]

        def best_probed(goals: list[Tensor]) -> Tensor:
            """The goal whose push the seen retain answers feel least (``probe``: minus what the
            forget answers feel, or that alone); the first drawn when none can be probed (RMU)."""
            if len(goals) < 2 or not r_probe.any():
                return goals[0]
            probes.append([pushed_logp(model, r_rows, r_probe, layer, g, PROBE_SHARE) for g in goals])
            score = probes[-1]
            if cfg.lookup_probe != "retain":  # ... and the forget answers feel most
                f_probes.append([pushed_logp(model, f_rows, f_subj, layer, g, PROBE_SHARE) for g in goals])
                keep_w = 1.0 if cfg.lookup_probe == "contrast" else 0.0
                score = [keep_w * r - f for r, f in zip(probes[-1], f_probes[-1], strict=True)]
            return goals[max(range(len(goals)), key=score.__getitem__)]

        def draw_goal() -> tuple[Tensor, Tensor]:
            """The misdirection target of the subject states and the term's normaliser."""
            if stranger is not None:  # each subject token towards a stranger's state (`deep_stranger`)
                drawn()  # drawn either way: the retain batches stay the same
                return stranger, (f_base - stranger).pow(2).sum(-1).mean()  # the term starts at 1
            if not cfg.lookup_per_subject:
                return best_probed(drawn()), f_ms
            # ``per_subject``: each forget subject its own direction, and each steered token its subject's
            # (the facts' tokens in row order, then the names' alone)
            people = sorted({f.subject for f in forget if f.subject})
            spelled = [forget[int(i)].subject for i in f_subj.nonzero()[:, 0].tolist()]
            spelled += [f_names[int(i)] for i in n_subj.nonzero()[:, 0].tolist()] if f_names else []
            index = torch.tensor([people.index(name) for name in spelled], dtype=torch.long)
            return torch.stack([best_probed(drawn()) for _ in people])[index], f_ms

        goal, goal_ms = draw_goal()
        f_batch = tokenize_facts(tokenizer, [f.prompt for f in forget], [f.answer for f in forget])
        r_batch = tokenize_facts(tokenizer, [f.prompt for f in retain], [f.answer for f in retain])
        # the retain budget counts the facts the base answers by >= budget_margin nats (a coin flip is not knowledge)
        # (none that clear: every retain fact counts, the budget is never switched off)
        b_facts = list(retain)
        if cfg.lookup_budget_margin > 0:
            with torch.no_grad():
                gaps = first_token_margins(logits_at(model, r_batch, prompt_ends(r_batch)), r_batch.answer_ids[:, 0])
            b_facts = [f for f, m in zip(retain, gaps.tolist(), strict=True)
                       if m >= cfg.lookup_budget_margin] or b_facts
        b_batch = r_batch if len(b_facts) == len(retain) else \
            tokenize_facts(tokenizer, [f.prompt for f in b_facts], [f.answer for f in b_facts])
        floor = cfg.lookup_retain_budget * _accuracy(model, b_batch)

        def name_term() -> Tensor:
            """``name_layer``: the forget names' own tokens after block ``n_at`` against their stranger's."""
            assert a_steer is not None and nm_steer is not None
            nm_where, nm_goal, nm_ms = nm_steer
            low = hidden_at(model, a_steer[0], n_at).float()[nm_where]
            return cfg.lookup_name_weight * (low - nm_goal).pow(2).sum(-1).mean() / nm_ms

        def keep_terms(f_all: Tensor | None) -> tuple[Tensor, int]:
            """The keep terms (each over ``r_ms``) and the forward passes they ran; ``f_all``: the
            forget rows' states after block ``layer`` (needed with ``keep_context``)."""
            pick = torch.randperm(len(r_rows), generator=gen)[: cfg.retain_batch]
            r_hidden, keep = _shift(model, r_rows, r_where, r_base, pick, layer)
            keep, passes = keep / r_ms, 1
            width = r_hidden.shape[1]
            if r_name[pick, :width].any():
                name_ref = r_name_base[_flat_index(r_name, pick, width)]
                name_h = r_hidden[r_name[pick, :width]].float()
                keep = keep + cfg.lookup_keep_subject * (name_h - name_ref).pow(2).sum(-1).mean() / r_ms
            if f_ctx.any():
                assert f_all is not None
                keep = keep + (f_all[f_ctx] - f_ctx_base).pow(2).sum(-1).mean() / r_ms
            if g_keep is not None:
                g_rows, g_where, g_base, g_gen = g_keep
                g_pick = torch.randperm(len(g_rows), generator=g_gen)[: cfg.retain_batch]
                keep = keep + _shift(model, g_rows, g_where, g_base, g_pick, layer)[1] / r_ms
                passes += 1
            for kept_rows, batch, at in ((n_keep, 0, layer), (a_keep, cfg.lookup_after_batch, a_layer),
                                         (nm_keep, cfg.lookup_after_batch, n_at)):
                if kept_rows is not None:
                    k_rows, k_where, k_base = kept_rows
                    k_pick = torch.randperm(len(k_rows), generator=a_gen)[:batch] if 0 < batch < len(k_rows) \
                        else torch.arange(len(k_rows))
                    keep = keep + _shift(model, k_rows, k_where, k_base, k_pick, at)[1] / r_ms
                    passes += 1
            return keep, passes

        def step_loss(terms: dict[str, Tensor], keep: Tensor, passes: int) -> StepLoss:
            """The misdirection ``terms`` (each already weighted; logged one by one, `TERMS`, and as
            their sum ``misdirect``) plus the weighted keeps."""
            first, *rest = terms.values()
            misdirect = sum(rest, first)  # in the order the terms were added: the loss as before the split
            return StepLoss(misdirect + cfg.lookup_retain_weight * keep,
                            {"misdirect": float(misdirect.detach()), **{k: float(v.detach()) for k, v in terms.items()},
                             "retain_shift": float(keep.detach())}, passes)

        in_loop = teach is not None and not cfg.lookup_teacher_steps  # the teacher in the tries' loss
        # ``answer_hinge``: each trained answer's first token pushed to ``target_margin`` nats below the best
        # other token (no further), the gradient reaching the slices only through the forget names' tokens
        hinge: tuple[Tensor, Tensor] | None = None  # where each row predicts its first answer token, and that token

        def hinge_mean() -> Tensor:
            """The mean over the trained answers of max(0, first-token margin + ``target_margin``)."""
            assert hinge is not None
            gap = first_token_margins(_logits_where(model, f_rows, hinge[0]), hinge[1])
            return (gap + cfg.lookup_target_margin).clamp(min=0).mean()

        if cfg.lookup_answer_hinge > 0:
            hinge = _first_answer(f_rows)
            with torch.no_grad():
                h0 = hinge_mean().clamp(min=1e-6)

        def answer_term() -> Tensor:
            with deltas.routed(model, f_subj):
                return cfg.lookup_answer_hinge * hinge_mean() / h0

        # ``retain_hinge``: each seen retain answer's first-token margin kept at or above its base margin,
        # capped at `RETAIN_HINGE_CAP` nats (a flip is what is guarded, not a firm answer's last nat)
        r_hinge: tuple[Tensor, Tensor, Tensor] | None = None  # where, which token, the floor
        if cfg.lookup_retain_hinge > 0:
            r_at = _first_answer(r_rows)
            with torch.no_grad():
                r_floor = first_token_margins(_logits_where(model, r_rows, r_at[0]), r_at[1]).clamp(max=RETAIN_HINGE_CAP)
            r_hinge = (*r_at, r_floor)

        def retain_answer_term() -> Tensor:
            assert r_hinge is not None
            gap = first_token_margins(_logits_where(model, r_rows, r_hinge[0]), r_hinge[1])
            return cfg.lookup_retain_hinge * (r_hinge[2] - gap).clamp(min=0).mean()

        def loss_fn(step: int, teacher: bool = in_loop) -> StepLoss:
            """The tries' loss; ``teacher``: with the teacher terms (in every step unless ``teacher_steps``
            puts them in a phase of their own; ``teacher_joined``: there with every term)."""
            f_all = hidden_at(model, f_rows, layer).float()
            steered = torch.cat([f_all[f_subj], hidden_at(model, n_rows, layer).float()[n_subj]]) \
                if f_names else f_all[f_subj]
            terms = {"subject": (steered - goal).pow(2).sum(-1).mean() / goal_ms}
            if a_steer is not None:
                a_rows, a_where, a_goal, a_ms = a_steer
                after = hidden_at(model, a_rows, a_layer).float()[a_where]
                terms["after_name"] = cfg.lookup_after_name * (after - a_goal).pow(2).sum(-1).mean() / a_ms
                if nm_steer is not None:
                    terms["name"] = name_term()
            if hinge is not None:
                terms["answer"] = answer_term()
            if r_hinge is not None:
                terms["retain_answer"] = retain_answer_term()
            if teacher:
                terms |= teacher_terms()
            keep, passes = keep_terms(f_all)
            return step_loss(terms, keep, 1 + bool(f_names) + (a_steer is not None) + (nm_steer is not None)
                             + (hinge is not None) + (r_hinge is not None) + teacher * (1 + (t_keep is not None)) + passes)

        def teacher_terms() -> dict[str, Tensor]:
            """``after_teacher``: the KL after the forget names (``teacher_routed``: trained through the
            names' own tokens only) and, with ``teacher_keep``, a sample of the retain names' texts kept."""
            assert teach is not None
            s_rows, s_where, teacher, kl0, t_name = teach
            with deltas.routed(model, t_name) if cfg.lookup_teacher_routed else contextlib.nullcontext():
                t_logits = _logits_where(model, s_rows, s_where)
            terms = {"teacher": cfg.lookup_after_teacher * _kl(teacher, t_logits) / kl0}
            if t_keep is not None:  # ``teacher_keep``: a sample of the retain names' texts, their predictions kept
                kt_rows, kt_where, kt_base, kt_norm, kt_gen = t_keep
                pick = torch.randperm(len(kt_rows), generator=kt_gen)[: cfg.lookup_teacher_batch]
                batch, width = kt_rows.take(pick), int(kt_rows.mask[pick].sum(-1).max())
                terms["teacher_keep"] = cfg.lookup_teacher_keep * _kl(
                    kt_base[_flat_index(kt_where, pick, width)], _logits_where(model, batch, kt_where[pick, :width])) / kt_norm
            return terms

        def teacher_loss(step: int) -> StepLoss:
            """``teacher_steps``: after the tries, the teacher term alone (and the keeps)."""
            f_all = hidden_at(model, f_rows, layer).float() if f_ctx.any() else None
            keep, passes = keep_terms(f_all)
            return step_loss(teacher_terms(), keep, (f_all is not None) + 1 + (t_keep is not None) + passes)

        def name_loss(step: int) -> StepLoss:
            """``name_steps``: after the forget target, the name term alone (and the keeps)."""
            f_all = hidden_at(model, f_rows, layer).float() if f_ctx.any() else None
            keep, passes = keep_terms(f_all)
            return step_loss({"name": name_term()}, keep, (f_all is not None) + 1 + passes)

        # ``target_margin``: a trained fact counts until its answer is that far below the top token
        forget_acc = lambda: _accuracy(model, f_batch, cfg.lookup_target_margin)  # noqa: E731
        settings = LoopSettings(lr=cfg.lookup_lr, target=cfg.lookup_target, eval_every=1,
                                retain_floor=floor)
        tries: list[tuple[float, Outcome]] = []
        name_phase: dict[str, Any] | None = None
        teacher_phase: dict[str, Any] | None = None  # ``teacher_steps``' loop
        extra: list[Outcome] = []  # ``name_steps``' and ``teacher_steps``' loops
        best: tuple[int, list[Tensor]] | None = None  # the try that forgot most (the first of equals), its deltas
        fallback = cfg.lookup_teacher_fallback and in_loop
        fallbacks: list[dict[str, Any]] = []  # ``teacher_fallback``: each try's run without the teacher

        def run(loss: Callable[[int], StepLoss], loop: LoopSettings, steps: int, desc: str) -> Outcome:
            """``steps`` steps of ``loss`` on the lookup slices, forget and (budget) retain accuracy checked."""
            return optimise(model, loss, loop, total_steps=steps, params=deltas.named(), forget_accuracy=forget_acc,
                            retain_accuracy=lambda: _accuracy(model, b_batch), progress=False, desc=desc)

        with deltas.attached(model):
            # a direction that stops at the retain budget before forgetting is dropped and another one drawn
            # (``tries``; the stranger target has nothing to redraw), the weights back at the base's
            while True:
                outcome = run(loss_fn, settings, cfg.lookup_steps, "lookup misdirection")
                more = None
                if fallback and outcome.stopped == "retain budget" and forget_acc() > cfg.lookup_target:
                    # ``teacher_fallback``: the same direction goes on from here without the teacher term
                    more = run(functools.partial(loss_fn, teacher=False), settings, cfg.lookup_steps,
                               "lookup fallback")
                    outcome = _joined(outcome, more)
                tries.append((forget_acc(), outcome))
                if more is not None:
                    fallbacks.append({"try": len(tries) - 1, "steps": more.steps, "stopped": more.stopped,
                                      "forget_accuracy": round(tries[-1][0], 4), "terms": _terms(more)})
                if best is None or tries[-1][0] < tries[best[0]][0]:
                    best = (len(tries) - 1, [p.detach().clone() for _, p in deltas.named()])
                # (a budget stop once every trained answer is gone ends the tries: ``target_margin``'s
                # depth is not worth a new direction)
                if tries[-1][0] <= cfg.lookup_target or outcome.stopped != "retain budget" \
                        or len(tries) >= cfg.lookup_tries or stranger is not None \
                        or cfg.lookup_target_margin > 0 and _accuracy(model, f_batch) <= cfg.lookup_target:
                    break
                with torch.no_grad():
                    for _, p in deltas.named():
                        p.zero_()
                goal, goal_ms = draw_goal()
            with torch.no_grad():  # the try that forgot the most (the first to reach the target)
                for (_, p), kept in zip(deltas.named(), best[1], strict=True):
                    p.copy_(kept)
            if cfg.lookup_name_steps and nm_steer is not None:  # the name term on, the keeps and budget still
                name_start = float(name_term().detach())
                more = run(name_loss, dataclasses.replace(settings, target=None), cfg.lookup_name_steps,
                           "lookup name steps")
                name_phase = {"steps": more.steps, "stopped": more.stopped, "term_start": round(name_start, 4),
                              "term_end": round(float(name_term().detach()), 4), "forget_accuracy": forget_acc(),
                              "terms": _terms(more)}
                extra.append(more)
            if cfg.lookup_teacher_steps and teach is not None:  # the teacher (``joined``: every term), keeps, budget
                with torch.no_grad():
                    t_start = {k: round(float(v), 4) for k, v in teacher_terms().items()}
                # ``teacher_hold``: a step that brings a trained fact back is undone and ends the phase
                ceiling = forget_acc() if cfg.lookup_teacher_hold else None
                more = run(functools.partial(loss_fn, teacher=True) if cfg.lookup_teacher_joined else teacher_loss,
                           dataclasses.replace(settings, target=None, forget_ceiling=ceiling), cfg.lookup_teacher_steps,
                           "lookup teacher steps")
                with torch.no_grad():
                    t_end = {k: round(float(v), 4) for k, v in teacher_terms().items()}
                teacher_phase = {"steps": more.steps, "stopped": more.stopped, "terms_start": t_start,
                                 "terms_end": t_end, "forget_accuracy": forget_acc(), "terms": _terms(more)}
                extra.append(more)
        deltas.merge(model)
        runs = [o for _, o in tries] + extra
        outcome = _summed(tries[best[0]][1], runs)
    finally:
        for n, p in model.named_parameters():
            p.requires_grad_(flags[n])
            p.grad = None
    layers = sorted({c.layer for c in components})
    return outcome, {"stage": "lookup_misdirection", "layer": layer, "after_layer": a_layer, "name_layer": n_layer,
                     "steer": cfg.lookup_steer,
                     "neurons": len(components),
                     "neuron_layers": {str(lay): sum(c.layer == lay for c in components) for lay in layers},
                     "trainable": deltas.n_trainable, "kept_texts": len(g_texts), "steps": outcome.steps,
                     "stopped": outcome.stopped,
                     "tries": [{"steps": o.steps, "stopped": o.stopped, "forget_accuracy": round(a, 4),
                                "terms": _terms(o)} for a, o in tries],
                     "budget_facts": len(b_facts), "name_rows": len(f_names), "name_phase": name_phase,
                     "teacher_phase": teacher_phase, "teacher_fallbacks": fallbacks,
                     "after_name_tokens": 0 if a_steer is None else int(a_steer[1].sum()),
                     "after_name_keep_rows": 0 if a_keep is None else len(a_keep[0]),
                     "teacher_tokens": 0 if teach is None else int(teach[1].sum()),
                     "teacher_routed_tokens": int(teach[4].sum()) if teach is not None and cfg.lookup_teacher_routed else 0,
                     "teacher_keep_rows": 0 if t_keep is None else len(t_keep[0]),
                     "direction_probes": [[round(p, 6) for p in ps] for ps in probes],
                     "direction_forget_probes": [[round(p, 6) for p in ps] for ps in f_probes],
                     "forget_accuracy": _accuracy(model, f_batch),
                     **({"forget_margin_accuracy": _accuracy(model, f_batch, cfg.lookup_target_margin)}
                        if cfg.lookup_target_margin > 0 else {}),
                     "retain_floor": round(floor, 4), "retain_accuracy": _accuracy(model, r_batch)}


# a step's logged parts (``step_loss``; ``misdirect`` sums the others but ``retain_shift``, the keeps' sum)
TERMS = ("misdirect", "subject", "after_name", "name", "answer", "retain_answer", "teacher", "teacher_keep",
         "retain_shift")


def _terms(outcome: Outcome) -> dict[str, dict[str, float]]:
    """Each logged term at a run's first and last step (its value before that step's update; a term
    a try's later run leaves out, at the last step that has it): how
    far each part of the joint loss moved, e.g. whether the name term lagged while the subject's
    reached its target."""
    if not outcome.log:
        return {}
    return {k: {"first": round(outcome.log[0][k], 6),
                "last": round(next(e[k] for e in reversed(outcome.log) if k in e), 6)}
            for k in TERMS if k in outcome.log[0]}


def _summed(outcome: Outcome, runs: Sequence[Outcome]) -> Outcome:
    """``outcome`` with the steps and passes of ``runs`` added up."""
    return dataclasses.replace(outcome, steps=sum(o.steps for o in runs),
                               forward_passes=sum(o.forward_passes for o in runs),
                               backward_passes=sum(o.backward_passes for o in runs))


def _joined(first: Outcome, then: Outcome) -> Outcome:
    """One try made of two runs, ``then`` going on from where ``first`` stopped: steps, passes,
    seconds and logs add up; how it stopped and what it reached are ``then``'s."""
    return dataclasses.replace(_summed(then, (first, then)), seconds=first.seconds + then.seconds,
                               params_changed=max(first.params_changed, then.params_changed),
                               log=first.log + then.log, notes=first.notes + then.notes)


def _first_answer(rows: Rows) -> tuple[Tensor, Tensor]:
    """Where each row predicts its first answer token (``[row, pos]``, `_logits_where`'s mask) and that token."""
    first = rows.score & (rows.score.cumsum(-1) == 1)
    return torch.nn.functional.pad(first, (0, 1)), rows.ids[:, 1:][first]


def _logits_where(model: Any, rows: Rows, where: Tensor) -> Tensor:
    """The whole model's next-token logits ``[where.sum(), vocab]`` from the states ``where`` marks."""
    hidden = model.base_model(input_ids=rows.ids, attention_mask=rows.mask).last_hidden_state
    return model.get_output_embeddings()(hidden[where[:, : hidden.shape[1]]]).float()


def _kl(target_logp: Tensor, logits: Tensor) -> Tensor:
    """Mean over positions of ``KL(target || softmax(logits))``, ``target_logp`` log-probabilities."""
    return (target_logp.exp() * (target_logp - logits.log_softmax(-1))).sum(-1).mean()


@torch.no_grad()
def _stranger_goal(model: Any, tokenizer: Any, subjects: list[str], forget: Sequence[Any], retain: Sequence[Any],
                   texts: list[str], offsets: list, mask: Tensor, layer: int) -> Tensor:
    """``[mask.sum(), d]``: the base states after block ``layer`` of each forget subject token
    (``texts[i]`` spells ``subjects[i]``) at its stranger word, in the twin text (`deep_stranger`)."""
    names = assign(subjects, strangers(forget, retain))
    twins = twin_texts(texts, subjects, names)
    t_rows, t_offsets = build_rows(tokenizer, twins)
    states = hidden_at(model, t_rows, layer).float()
    return word_targets(texts, offsets, subjects, mask, twins, t_offsets, names, states)


def push_towards(where: Tensor, goal: Tensor, share: float) -> Callable[[Tensor], Tensor]:
    """A `block_output_edited` edit: the states at ``where`` moved ``share`` of the way towards ``goal``."""
    def push(hidden: Tensor) -> Tensor:
        w = where[:, : hidden.shape[1]]
        hidden = hidden.clone()
        hidden[w] = hidden[w] + share * (goal.to(hidden.dtype) - hidden[w])
        return hidden

    return push


def pushed_logp(model: Any, rows: Rows, where: Tensor, layer: int, goal: Tensor, share: float) -> float:
    """Mean log-prob of ``rows``' scored tokens with the states after block ``layer`` at ``where``
    moved ``share`` of the way towards ``goal``: how much the answers feel a push that way."""
    with block_output_edited(model, layer, push_towards(where, goal, share)), torch.no_grad():
        return -float(rows_nll(model, rows))


def _shift(model: Any, rows: Rows, where: Tensor, base: Tensor, pick: Tensor, layer: int) -> tuple[Tensor, Tensor]:
    """The states after block ``layer`` of the rows ``pick`` ``[batch pos d]``, and their mean
    squared distance from ``base`` (``states[where]`` of every row, before the edit) at ``where``."""
    batch = rows.take(pick)
    hidden, width = hidden_at(model, batch, layer), batch.mask.shape[1]
    moved = hidden[where[pick, :width]].float() - base[_flat_index(where, pick, width)]
    return hidden, moved.pow(2).sum(-1).mean()


def _flat_index(where: Tensor, pick: Tensor, width: int) -> Tensor:
    """Indices into ``x[where]`` (row-major) of the rows ``pick``'s first ``width`` positions that
    ``where`` marks, in the order ``x[pick, :width][where[pick, :width]]`` lists them."""
    flat = torch.full(where.shape, -1, dtype=torch.long)
    flat[where] = torch.arange(int(where.sum()))
    sub = flat[pick, :width]
    return sub[where[pick, :width]]
