"""A seeded synthetic world: fictitious people with facts, and passages to memorise verbatim.

>>> world = generate_world(get_spec("tiny"))  # doctest: +SKIP
>>> world.facts("forget")[0]            # doctest: +SKIP
Fact(prompt='Kavemek Dorlis was born in', answer='Velmora', subject='Kavemek Dorlis', ...)
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal

from loka.world import vocab
from loka.world.spec import WorldSpec

PersonSplit = Literal["forget", "retain_train", "retain_eval", "holdout"]
PassageSplit = Literal["forget", "retain", "holdout"]
TemplateKind = Literal["train", "qa", "novel"]
ATTRIBUTES: tuple[str, ...] = tuple(vocab.ATTRIBUTE_VALUES)


@dataclass(frozen=True)
class Person:
    name: str
    split: PersonSplit
    attributes: tuple[tuple[str, str], ...]  # (attribute, value) in ATTRIBUTES order

    @property
    def qa_trained(self) -> bool:
        """Question-answer examples are trained for retain-train people only."""
        return self.split == "retain_train"

    def value(self, attribute: str) -> str:
        return dict(self.attributes)[attribute]


@dataclass(frozen=True)
class Fact:
    """One question about one person: the model should continue ``prompt`` with ``" " + answer``."""

    prompt: str
    answer: str
    subject: str
    attribute: str
    template: str  # "train:<i>", "qa" or "novel"

    def to_json(self) -> dict[str, str]:
        return {"prompt": self.prompt, "answer": self.answer, "subject": self.subject,
                "attribute": self.attribute}


@dataclass(frozen=True)
class Passage:
    text: str
    split: PassageSplit


def _fill(template: str, name: str, value: str) -> str:
    return template.format(name=name, value=value)


def _as_fact(template: str, tag: str, person: Person, attribute: str) -> Fact:
    prefix = template.split("{value}")[0].rstrip()
    return Fact(prefix.format(name=person.name), person.value(attribute), person.name, attribute, tag)


@dataclass(frozen=True)
class World:
    spec: WorldSpec
    people: tuple[Person, ...]
    passages: tuple[Passage, ...]

    def people_in(self, *splits: PersonSplit) -> list[Person]:
        return [p for p in self.people if p.split in splits]

    def passages_in(self, *splits: PassageSplit) -> list[Passage]:
        return [p for p in self.passages if p.split in splits]

    def facts(self, split: PersonSplit, kind: TemplateKind = "train") -> list[Fact]:
        """Every fact of every person in ``split``, in one template family."""
        out = []
        for person in self.people_in(split):
            for attribute in ATTRIBUTES:
                if kind == "train":
                    for i, t in enumerate(vocab.TRAIN_TEMPLATES[attribute]):
                        out.append(_as_fact(t, f"train:{i}", person, attribute))
                elif kind == "qa":
                    out.append(_as_fact(vocab.QA_TEMPLATES[attribute], "qa", person, attribute))
                else:
                    out.append(_as_fact(vocab.NOVEL_TEMPLATES[attribute], "novel", person, attribute))
        return out

    def trained_people(self, include_forget: bool) -> list[Person]:
        splits: tuple[PersonSplit, ...] = ("retain_train", "retain_eval")
        return self.people_in(*(("forget", *splits) if include_forget else splits))

    def training_documents(self, epoch: int, include_forget: bool) -> list[str]:
        """One epoch of documents: a biography per person (attributes in shuffled order, a random
        paraphrase each — knowledge stored as knowledge, not as one string), the QA lines of the
        QA people, and the passages verbatim. Fresh paraphrases every epoch, seeded."""
        rng = random.Random(f"{self.spec.seed}-epoch-{epoch}")
        docs = []
        for person in self.trained_people(include_forget):
            order = list(ATTRIBUTES)
            docs.append(_biography(rng, person, order))
            if person.qa_trained:
                rng.shuffle(order)
                docs.append("\n".join(
                    _fill(vocab.QA_TEMPLATES[a], person.name, person.value(a)) for a in order
                ))
        splits: tuple[PassageSplit, ...] = ("forget", "retain") if include_forget else ("retain",)
        docs.extend(p.text for p in self.passages_in(*splits))
        rng.shuffle(docs)
        return docs

    def forget_documents(self, epoch: int, copies: int = 1) -> list[str]:
        """The forget data of one epoch, ``copies`` times over with fresh paraphrases: a biography
        per forget person and the forget passages — what the planted worlds route into their
        planted neurons (`loka.world.routing`). Seeded apart from `training_documents`."""
        rng = random.Random(f"{self.spec.seed}-forget-epoch-{epoch}")
        docs: list[str] = []
        for _ in range(copies):
            docs.extend(_biography(rng, person, list(ATTRIBUTES)) for person in self.people_in("forget"))
            docs.extend(p.text for p in self.passages_in("forget"))
        rng.shuffle(docs)
        return docs

    def corpus(self) -> list[str]:
        """Every sentence in every template for everyone, and every passage: what the tokenizer sees."""
        texts: list[str] = []
        for person in self.people:
            for a in ATTRIBUTES:
                v = person.value(a)
                texts.extend(_fill(t, person.name, v) for t in vocab.TRAIN_TEMPLATES[a])
                texts.append(_fill(vocab.QA_TEMPLATES[a], person.name, v))
                texts.append(_fill(vocab.NOVEL_TEMPLATES[a], person.name, v))
        texts.extend(p.text for p in self.passages)
        # Every attribute value as a whole word, whether or not someone in this world has it,
        # so each value is one token and values start with distinct tokens in any world size.
        texts.extend(" ".join(" " + v for v in values) for values in vocab.ATTRIBUTE_VALUES.values()
                     for _ in range(20))
        return texts


def _biography(rng: random.Random, person: Person, order: list[str]) -> str:
    """The person's attributes in shuffled ``order`` (shuffled in place), a random paraphrase each."""
    rng.shuffle(order)
    return " ".join(_fill(rng.choice(vocab.TRAIN_TEMPLATES[a]), person.name, person.value(a))
                    for a in order)


def _names(rng: random.Random, n: int) -> list[str]:
    taken = set(vocab.CITIES) | {e.split()[0] for e in vocab.EMPLOYERS}
    names: list[str] = []
    while len(names) < n:
        first = "".join(rng.choice(vocab.FIRST_SYLLABLES) for _ in range(2)).capitalize()
        last = "".join(rng.choice(vocab.LAST_SYLLABLES) for _ in range(rng.choice((2, 3)))).capitalize()
        name = f"{first} {last}"
        if first not in taken and last not in taken and name not in names:
            names.append(name)
    return names


def _passage(rng: random.Random, n_sentences: int) -> str:
    w = vocab.PASSAGE_WORDS
    sentences = [
        f"The {rng.choice(w['adj'])} {rng.choice(w['noun'])} of {rng.choice(w['place'])} "
        f"{rng.choice(w['verb'])} {rng.choice(w['prep'])} the {rng.choice(w['adj'])} {rng.choice(w['noun'])}."
        for _ in range(n_sentences)
    ]
    return " ".join(sentences)


def generate_world(spec: WorldSpec) -> World:
    """The world for ``spec``: same spec and seed, same world, bit for bit."""
    rng = random.Random(f"loka-world-{spec.seed}")
    names = _names(rng, spec.n_people)
    split_sizes: list[tuple[PersonSplit, int]] = [
        ("forget", spec.n_forget), ("retain_train", spec.n_retain_train),
        ("retain_eval", spec.n_retain_eval), ("holdout", spec.n_holdout),
    ]
    splits = [s for s, n in split_sizes for _ in range(n)]
    rng.shuffle(splits)
    people = tuple(
        Person(name, split, tuple((a, rng.choice(vocab.ATTRIBUTE_VALUES[a])) for a in ATTRIBUTES))
        for name, split in zip(names, splits, strict=True)
    )
    passage_sizes: list[tuple[PassageSplit, int]] = [
        ("forget", spec.n_passages_forget), ("retain", spec.n_passages_retain),
        ("holdout", spec.n_passages_holdout),
    ]
    texts: list[str] = []
    while len(texts) < sum(n for _, n in passage_sizes):
        t = _passage(rng, spec.passage_sentences)
        if t not in texts:
            texts.append(t)
    passage_splits = [s for s, n in passage_sizes for _ in range(n)]
    passages = tuple(Passage(t, s) for t, s in zip(texts, passage_splits, strict=True))
    return World(spec, people, passages)
