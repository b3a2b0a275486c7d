"""A stranger's states as the lookup misdirection's target: forget a name by reading it as an unknown one.

RMU (Li et al. 2024, arXiv 2403.03218) steers the forget text's states towards one fixed, scaled
random direction; how far the edit spills onto other names then depends on which direction was
drawn (`bench.deep_real`, BENCHMARKS.md). A model retrained without a person reads that
person's name the way it reads any name it never learned: calibrated forgetting asks for
exactly that state, not an arbitrary one. So each forget subject gets a stranger (`STRANGERS`: made-up full names, none
spelling a word of the request), its sentences are written again with the stranger in the
subject's place, and the base model's states of those twin sentences after the steered block are
the target: each token of the subject's ``w``-th word goes to the mean state of the stranger's
``w``-th word's tokens (the last word for longer names). The sentence around the name is the
same, so only what the name itself contributes moves. Off by default (``lookup_steer``): on
SmolLM2 it was measured and not adopted (BENCHMARKS.md, `bench.deep_real` rounds 6-7).

Example:
    >>> names = strangers(forget, retain)                                      # doctest: +SKIP
    >>> twins = twin_texts(texts, subjects, assign(subjects, names))             # doctest: +SKIP
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from loka.methods.localized.deep_rows import Rows, build_rows, subject_mask
from loka.methods.localized.deep_selftext import avoid_words, spells_any

# Common first names and surnames, combined so that none names a well-known person or character.
STRANGERS = ("Paul Brenner", "Laura Whitfield", "Mark Dunley", "Helen Marsh", "Peter Lindon", "Sarah Mellish",
             "David Hartwell", "Claire Osgood", "Martin Fenwick", "Julia Rendall", "Simon Ashby", "Karen Tolley",
             "Brian Colwell", "Diane Harrow", "Neil Pardoe", "Susan Kettle")
_WORDS = re.compile(r"\S+")
# `after_name`: short continuations of a name that starts a text; the words after it are where a
# query that starts with the name ("<name> works at the ...") has read it before the steered block
STEMS = (" is", " was", " has", " and", ", who", " said that", " became", " lived in")


def strangers(forget: Sequence[Any], retain: Sequence[Any]) -> list[str]:
    """`STRANGERS` that spell none of the forget subjects' words, the forget prompts' own
    capitalised words (`avoid_words`) or a retain subject's words."""
    avoid = avoid_words(forget, retain) | {w for f in retain for w in _WORDS.findall(f.subject or "")}
    names = [n for n in STRANGERS if not spells_any(n, avoid)]
    if not names:
        raise ValueError("every stranger name spells a word of the request; use lookup_steer='random'")
    return names


def assign(subjects: Sequence[str], names: Sequence[str]) -> list[str]:
    """Each row's stranger: the same one for every row of a subject (subjects in sorted order, the
    empty one not counted, so a subject gets the same stranger whichever rows are passed)."""
    order = {s: i for i, s in enumerate(sorted(set(subjects) - {""}))}
    return [names[order.get(s, 0) % len(names)] for s in subjects]


def twin_texts(texts: Sequence[str], subjects: Sequence[str], names: Sequence[str]) -> list[str]:
    """Each text with its subject's first occurrence (where `subject_mask` finds it) replaced by
    the row's stranger; texts that do not spell their subject stay as they are."""
    out = []
    for text, subject, name in zip(texts, subjects, names, strict=True):
        a = text.find(subject) if subject else -1
        out.append(text if a < 0 else text[:a] + name + text[a + len(subject):])
    return out


def _word_spans(text: str, phrase: str) -> list[tuple[int, int]]:
    a = text.find(phrase) if phrase else -1
    return [] if a < 0 else [(a + m.start(), a + m.end()) for m in _WORDS.finditer(phrase)]


def word_targets(texts: Sequence[str], offsets: list, subjects: Sequence[str], mask: Tensor,
                 twins: Sequence[str], twin_offsets: list, names: Sequence[str], twin_states: Tensor) -> Tensor:
    """``[mask.sum(), d]``, in ``states[mask]``'s order: for every subject token ``mask`` marks,
    the mean of ``twin_states`` over the stranger's tokens of the same word (by the token's last
    character; the stranger's last word when it has fewer)."""
    out = []
    for i in range(mask.shape[0]):
        spans, twin_spans = _word_spans(texts[i], subjects[i]), _word_spans(twins[i], names[i])
        means = [torch.stack([twin_states[i, t] for t, (s, e) in enumerate(twin_offsets[i])
                              if s >= 0 and s < b and e > a]).mean(0) for a, b in twin_spans]
        for t in mask[i].nonzero().flatten().tolist():
            end = offsets[i][t][1] - 1
            w = next((j for j, (a, b) in enumerate(spans) if a <= end < b), 0 if end < spans[0][0] else len(spans) - 1)
            out.append(means[min(w, len(means) - 1)])
    return torch.stack(out)


def twin_positions(ids: Tensor, twin: Tensor, positions: Sequence[int]) -> dict[int, int]:
    """Each of ``positions`` of the row ``ids`` -> the same place in ``twin`` (both unpadded; aligned
    from the end, so the words after two different names line up), where the two tokens are equal."""
    shift = len(twin) - len(ids)
    return {p: p + shift for p in positions if 0 <= p + shift < len(twin) and int(ids[p]) == int(twin[p + shift])}


def fixed_stems(subjects: Sequence[str]) -> tuple[list[str], list[str]]:
    """Every subject with every `STEMS` entry, as two parallel lists (subject, stem)."""
    return [s for s in subjects for _ in STEMS], [stem for _ in subjects for stem in STEMS]


def fact_stems(facts: Sequence[Any], avoid: frozenset[str] = frozenset()) -> tuple[list[str], list[str]]:
    """Each fact written name-first, as two parallel lists (subject, stem): the stem is ``": "`` and
    the fact's words (``prompt + " " + answer``) with its subject's first occurrence taken out, so
    the words after the name are the request's own, and none of them spells the name again. Facts
    without a subject, and stems that spell a word of ``avoid``, are left out."""
    pairs = []
    for f in facts:
        if not f.subject:
            continue
        text = f"{f.prompt} {f.answer}"
        a = text.find(f.subject)
        words = text if a < 0 else text[:a] + text[a + len(f.subject):]
        stem = ": " + " ".join(words.split())
        if not spells_any(stem, avoid):
            pairs.append((f.subject, stem))
    return [s for s, _ in pairs], [stem for _, stem in pairs]


def stem_rows(tokenizer: Any, subjects: Sequence[str], stems: Sequence[str]) -> tuple[Rows, Tensor]:
    """Rows ``BOS + subjects[i] + stems[i]``, and the mask of their tokens after the subject."""
    rows = build_rows(tokenizer, [s + stem for s, stem in zip(subjects, stems, strict=True)],
                      [len(s) for s in subjects])[0]
    return rows, torch.nn.functional.pad(rows.score, (1, 0))  # ``score[t]`` marks the token at ``t + 1``


def name_targets(tokenizer: Any, subjects: Sequence[str], names: Sequence[str], stems: Sequence[str],
                 twin_states: Tensor) -> tuple[Tensor, Tensor]:
    """The mask of each name's own tokens in `stem_rows` of ``subjects`` and, in ``states[mask]``'s
    order, each token's target: the mean of ``twin_states`` (the states of `stem_rows` of the
    strangers ``names`` with the same stems) over the stranger's tokens of the same word."""
    texts = [s + stem for s, stem in zip(subjects, stems, strict=True)]
    twins = [n + stem for n, stem in zip(names, stems, strict=True)]
    rows, offsets = build_rows(tokenizer, texts, [len(s) for s in subjects])
    t_offsets = build_rows(tokenizer, twins, [len(n) for n in names])[1]
    mask = subject_mask(offsets, texts, subjects, rows.ids.shape[1])
    return mask, word_targets(texts, offsets, subjects, mask, twins, t_offsets, names, twin_states)


def after_name(tokenizer: Any, subjects: Sequence[str], names: Sequence[str], stems: Sequence[str]
               ) -> tuple[Rows, Tensor, Rows, Tensor]:
    """`stem_rows` of ``subjects`` and of their strangers ``names`` (each row's, with the same stem),
    and the masks of the tokens after the name equal in the two (`twin_positions`), in the same
    order (``twin_states[twin_mask]`` is ``states[mask]``'s target)."""
    rows, after = stem_rows(tokenizer, subjects, stems)
    t_rows = stem_rows(tokenizer, names, stems)[0]
    where, t_where = torch.zeros_like(after), torch.zeros_like(t_rows.mask, dtype=torch.bool)
    for i in range(len(rows)):
        n, m = int(rows.mask[i].sum()), int(t_rows.mask[i].sum())
        for p, q in twin_positions(rows.ids[i, :n], t_rows.ids[i, :m], after[i].nonzero().flatten().tolist()).items():
            where[i, p], t_where[i, q] = True, True
    return rows, where, t_rows, t_where
