"""Text the model writes itself, as a keep set for `loka-deep`'s lookup misdirection.

A pretrained model's unseen neighbours (other characters, people and places that the request's
retain facts do not name) lose their facts when the edit generalises from the forget names to
names that look or mean alike (SmolLM2: "Viktor Krum" forgotten, "Victor Frankenstein" lost).
RMU (Li et al. 2024, arXiv 2403.03218) keeps a generic retain corpus's states; none ships with a
model and none may be downloaded, so the base model writes one: sampled continuations of a few
fixed, topic-neutral prompts about characters, people and places (names the model itself knows
or makes up), seeded, before any edit. Texts that spell a forget subject's words or a word only
the forget prompts use (``Potter``, ``Hogwarts``) are dropped: keeping those states would fight
the edit.

`name_continuations` samples what the model says after a name itself (`lookup_after_texts`: the
words after a forget name that the lookup edit steers, and after a retain name that it keeps);
`stem_continuations` is the model's most likely words after a name and a fixed stem
(`lookup_teacher_source="stems"`: "Lord Voldemort lived in" -> " a world of dark magic,").

Example:
    >>> texts = self_texts(model, tok, 48, seed=0, avoid=avoid_words(forget, retain))  # doctest: +SKIP
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import torch

from loka.methods.localized.deep_rows import build_rows

PROMPTS = ("Famous characters from novels, films and television include",
           "Here is a list of well-known people and fictional characters with their full names:",
           "The main characters of the story are",
           "In the history of science, art and literature, the best-known names are",
           "Some of the most famous places in the world are",
           "My favourite book tells the story of")
_WORD = re.compile(r"[A-Za-z]+")  # "Potter's" -> "Potter", "s"; "Harry-Potter" -> "Harry", "Potter"
_CAPITAL = re.compile(r"\b[A-Z][A-Za-z]+")  # `names_another`: a capitalised word of two letters or more
PLAIN_DRAWS = 4  # `name_continuations` with ``plain``: samples drawn per text kept


def _continuation(tokenizer: Any, prompt: Any, row: Any) -> str:
    """The text ``row`` adds to ``prompt`` (token ids): the whole row decoded minus the prompt's text,
    so a decoder that strips a leading space (SentencePiece) keeps the continuation's first one."""
    head = tokenizer.decode(prompt, skip_special_tokens=True)
    full = tokenizer.decode(row, skip_special_tokens=True)
    return full[len(head):] if full.startswith(head) else tokenizer.decode(row[len(prompt):], skip_special_tokens=True)


def avoid_words(forget: Sequence[Any], retain: Sequence[Any]) -> frozenset[str]:
    """The forget subjects' words and the capitalised words only the forget prompts use."""
    subject = {w for f in forget for w in _WORD.findall(f.subject or "") if len(w) >= 3}
    caps = lambda facts: {w for f in facts for w in _WORD.findall(f.prompt) if w[0].isupper()}  # noqa: E731
    return frozenset(subject | {w for w in caps(forget) - caps(retain) if len(w) >= 3})


def spells_any(text: str, avoid: frozenset[str]) -> bool:
    """Whether ``text`` spells a word of ``avoid``, as written or in capitals ("POTTER")."""
    return any(w in avoid or w.isupper() and w.title() in avoid for w in _WORD.findall(text))


def _sampled(model: Any, tokenizer: Any, prompts: Sequence[Any], n: int, *, seed: int, new_tokens: int) -> list[list[str]]:
    """``n`` sampled continuations (top-p 0.95) of each prompt (token ids ``[1, pos]``), in order,
    from ``seed`` and on their own random stream (the caller's is left as it was)."""
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    out: list[list[str]] = []
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(seed)
        for ids in prompts:
            rows = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=True, top_p=0.95,
                                  temperature=1.0, max_new_tokens=new_tokens, num_return_sequences=n,
                                  pad_token_id=pad)
            out.append([_continuation(tokenizer, ids[0], row) for row in rows])
    return out


def self_texts(model: Any, tokenizer: Any, n: int, *, seed: int, avoid: frozenset[str],
               new_tokens: int = 40) -> list[str]:
    """Up to ``n`` sampled continuations (prompt included) of `PROMPTS`, none whose continuation
    spells a word of ``avoid`` (`spells_any`); the same ``seed`` (and thread count) gives the same
    texts. On CPU (the lookup stage's own passes are too)."""
    if n <= 0 or not hasattr(model, "generate"):
        return []
    prompts = [tokenizer(prompt, return_tensors="pt")["input_ids"] for prompt in PROMPTS]
    samples = _sampled(model, tokenizer, prompts, -(-n // len(PROMPTS)), seed=seed, new_tokens=new_tokens)
    return [prompt + c for prompt, cs in zip(PROMPTS, samples, strict=True) for c in cs if not spells_any(c, avoid)][:n]


def names_another(name: str, text: str) -> bool:
    """Whether ``text``, written right after ``name``, extends the name's last word ("Viktor Krum" +
    "pple") or names someone or something else mid-sentence: a capitalised word of two letters or
    more that is not a word of the name and does not open a sentence or a line ("Sirius Black" +
    " (Dame Darthwynn"). A text after a name should be about the name, not another one."""
    if text[:1].isalnum():
        return True
    own = set(_WORD.findall(name))
    for m in _CAPITAL.finditer(text):
        before = text[: m.start()].rstrip(" \t\"'(\u201c\u2018")
        if m.group() not in own and (not before or before[-1] not in ".!?:\n"):
            return True
    return False


def name_continuations(model: Any, tokenizer: Any, names: Sequence[str], n: int, *, seed: int,
                       avoid: frozenset[str] = frozenset(), new_tokens: int = 16,
                       plain: bool = False) -> tuple[list[str], list[str]]:
    """Up to ``n`` sampled continuations of ``BOS + name`` for each of ``names``, as two parallel
    lists (name, continuation): what the base model itself says after the name, where a query that
    starts with it reads it. Continuations that are empty or spell a word of ``avoid`` are dropped
    (a name may get none); with ``plain``, ``PLAIN_DRAWS`` x n are sampled and the first n of those
    kept that do not `names_another` either. The same ``seed`` (and thread count) gives the same
    texts; the caller's random state is left as it was."""
    if n <= 0 or not hasattr(model, "generate"):
        return [], []
    samples = _sampled(model, tokenizer, [build_rows(tokenizer, [name])[0].ids for name in names],
                       n * PLAIN_DRAWS if plain else n, seed=seed, new_tokens=new_tokens)

    def kept(name: str, text: str) -> bool:
        return bool(text.strip()) and not spells_any(text, avoid) and not (plain and names_another(name, text))

    pairs = [(name, c) for name, cs in zip(names, samples, strict=True) for c in [c for c in cs if kept(name, c)][:n]]
    return [name for name, _ in pairs], [c for _, c in pairs]


def stem_continuations(model: Any, tokenizer: Any, subjects: Sequence[str], stems: Sequence[str], new_tokens: int,
                       avoid: frozenset[str] = frozenset()) -> tuple[list[str], list[str]]:
    """Each ``stems[i]`` followed by the base model's greedy ``new_tokens`` after ``BOS + subjects[i] +
    stems[i]``, as two parallel lists (subject, stem + continuation): what the model itself says about
    the name in a fixed frame. Deterministic (no sampling); texts that spell a word of ``avoid`` are
    dropped."""
    if not hasattr(model, "generate"):
        return [], []
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    pairs = []
    with torch.no_grad():
        for subject, stem in zip(subjects, stems, strict=True):
            ids = build_rows(tokenizer, [subject + stem])[0].ids
            row = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                 max_new_tokens=new_tokens, pad_token_id=pad)[0]
            text = stem + _continuation(tokenizer, ids[0], row)
            if not spells_any(text, avoid):
                pairs.append((subject, text))
    return [s for s, _ in pairs], [t for _, t in pairs]
