"""Untrusted JSONL: valid records load exactly; malformed ones are refused with their line number."""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loka.errors import DataError
from loka.io.data import MAX_FIELD_CHARS, FactRecord, load_facts, load_passages, write_jsonl

text = st.text(min_size=1, max_size=40).filter(lambda s: s.strip())
json_junk = st.one_of(st.integers(), st.floats(allow_nan=False), st.booleans(), st.none(),
                      st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))
fact = st.fixed_dictionaries({"prompt": text, "answer": text}, optional={"subject": text, "attribute": text})
FILE_SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FILE_SETTINGS
@given(rows=st.lists(fact, min_size=1, max_size=8))
def test_valid_fact_files_round_trip(tmp_path, rows):
    path = tmp_path / "facts.jsonl"
    write_jsonl(path, rows)
    loaded = load_facts(path)
    assert [r.prompt for r in loaded] == [r["prompt"] for r in rows]
    assert [r.answer for r in loaded] == [r["answer"] for r in rows]
    assert all(isinstance(r, FactRecord) for r in loaded)


def _malformations():
    wrong_type = st.builds(lambda k, v: {"prompt": "p", "answer": "a", k: v},
                           st.sampled_from(["prompt", "answer", "subject", "attribute"]), json_junk)
    missing = st.sampled_from([{"prompt": "p"}, {"answer": "a"}, {}])
    unknown = st.builds(lambda k: {"prompt": "p", "answer": "a", k: "x"},
                        st.text(min_size=1, max_size=8).filter(lambda k: k not in {"prompt", "answer", "subject", "attribute"}))
    empty = st.sampled_from([{"prompt": " ", "answer": "a"}, {"prompt": "p", "answer": ""}])
    not_object = json_junk.filter(lambda v: not isinstance(v, dict))
    as_line = lambda obj: json.dumps(obj)  # noqa: E731
    raw_garbage = st.text(min_size=1, max_size=20).filter(lambda s: s.strip() and not _is_json_object(s))
    return st.one_of(wrong_type.map(as_line), missing.map(as_line), unknown.map(as_line),
                     empty.map(as_line), not_object.map(as_line), raw_garbage)


def _is_json_object(s):
    try:
        return isinstance(json.loads(s), dict)
    except ValueError:
        return False


MALFORMED_TRIED = []


@FILE_SETTINGS
@given(good=st.lists(fact, min_size=0, max_size=5), bad=_malformations())
def test_malformed_record_is_refused_with_its_line_number(tmp_path, good, bad):
    MALFORMED_TRIED.append(bad)
    path = tmp_path / "facts.jsonl"
    lines = [json.dumps(r) for r in good] + [bad]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=rf"facts.jsonl:{len(good) + 1}:"):
        load_facts(path)


def test_oversized_field_and_bad_encoding_and_empty_file(tmp_path):
    big = tmp_path / "big.jsonl"
    big.write_text(json.dumps({"text": "x" * (MAX_FIELD_CHARS + 1)}) + "\n")
    with pytest.raises(DataError, match="big.jsonl:1: field 'text'"):
        load_passages(big)
    binary = tmp_path / "bin.jsonl"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(DataError, match="not UTF-8"):
        load_passages(binary)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    with pytest.raises(DataError, match="no records"):
        load_facts(empty)
    with pytest.raises(DataError, match="no such file"):
        load_facts(tmp_path / "missing.jsonl")


def test_the_readme_hub_example_files_are_valid_user_data():
    """examples/frankenstein (the README's Pythia-160m command) loads and splits as user data."""
    from pathlib import Path

    from loka.io.data import load_facts
    from loka.verify.measurements.relearn import split_by_person
    from loka.workflows.user_data import split_retain

    root = Path(__file__).parents[1] / "examples" / "frankenstein"
    forget, retain, holdout = (load_facts(root / f"{n}.jsonl") for n in ("forget", "retain", "holdout"))
    assert len(forget) == 10 and len(holdout) == 6
    assert all(len(part) == 6 for part in split_retain(retain))
    train, test = split_by_person(forget)  # the relearning attack can hold speakers back
    assert train and test and {f.subject for f in train}.isdisjoint(f.subject for f in test)
