from dataclasses import replace

from loka.world.generator import ATTRIBUTES, generate_world
from loka.world.spec import get_spec
from loka.world.vocab import QA_TEMPLATES, TRAIN_TEMPLATES


def test_world_is_deterministic_for_a_seed():
    spec = get_spec("default")
    assert generate_world(spec) == generate_world(spec)
    assert generate_world(spec).training_documents(3, True) == generate_world(spec).training_documents(3, True)
    assert generate_world(replace(spec, seed=1)).people != generate_world(spec).people


def test_splits_are_disjoint_and_sized():
    spec = get_spec("default")
    world = generate_world(spec)
    names = [p.name for p in world.people]
    assert len(set(names)) == len(names) == spec.n_people
    sizes = {s: len(world.people_in(s)) for s in ("forget", "retain_train", "retain_eval", "holdout")}
    assert sizes == {"forget": spec.n_forget, "retain_train": spec.n_retain_train,
                     "retain_eval": spec.n_retain_eval, "holdout": spec.n_holdout}
    texts = [p.text for p in world.passages]
    assert len(set(texts)) == len(texts)


def test_training_documents_exclude_holdout_and_forget_when_asked():
    world = generate_world(get_spec("tiny"))
    retain_only = " ".join(world.training_documents(0, include_forget=False))
    full = " ".join(world.training_documents(0, include_forget=True))
    for person in world.people_in("holdout"):
        assert person.name not in full
    for person in world.people_in("forget"):
        assert person.name not in retain_only and person.name in full
    for passage in world.passages_in("forget"):
        assert passage.text not in retain_only and passage.text in full
    for passage in world.passages_in("holdout"):
        assert passage.text not in full


def test_qa_format_only_trained_for_retain_train_people():
    world = generate_world(get_spec("tiny"))
    docs = world.training_documents(0, include_forget=True)
    qa_docs = [d for d in docs if d.startswith("Q: ")]
    qa_people = {p.name for p in world.people_in("retain_train")}
    assert qa_docs and all(any(n in d for n in qa_people) for d in qa_docs)
    for person in world.people_in("forget", "retain_eval"):
        assert not any(person.name in d for d in qa_docs)


def test_facts_have_the_answer_at_the_end_of_the_sentence():
    world = generate_world(get_spec("tiny"))
    person = world.people_in("forget")[0]
    facts = [f for f in world.facts("forget") if f.subject == person.name]
    assert len(facts) == sum(len(TRAIN_TEMPLATES[a]) for a in ATTRIBUTES)
    for f in facts:
        assert person.name in f.prompt and f.answer == person.value(f.attribute)
        assert not f.prompt.endswith(" ")
    qa = world.facts("forget", "qa")
    assert len(qa) == len(world.people_in("forget")) * len(QA_TEMPLATES)
    assert qa[0].prompt.startswith("Q: ") and qa[0].prompt.endswith("A:")
