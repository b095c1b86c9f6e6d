"""Loaders: real-corpus counts against SOURCE.md, tag schemes, and one test per kind of bad input."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from nerre.errors import ConfigError, DataError
from nerre.example import Entity, Example, Relation
from nerre.loaders import (
    FORMATS,
    ReaderOptions,
    detect_format,
    from_dataset,
    load_examples,
    read_conll,
    read_hf,
    read_jsonl,
    read_spert,
    to_dataset,
    write_jsonl,
)
from nerre.loaders.tags import TagError, detect_scheme, iob2_tags, spans_from_tags


def stats(examples: list[Example]) -> dict:
    """Sentences, tokens, entities per label and relations per label, computed from Example objects."""
    return {
        "sentences": len(examples),
        "tokens": sum(len(x.tokens) for x in examples),
        "entities": dict(Counter(e.label for x in examples for e in x.entities)),
        "relations": dict(Counter(r.label for x in examples for r in x.relations)),
    }


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# --------------------------------------------------------------------------------------------- real corpora
@pytest.fixture(scope="module")
def conll2003(data_dir: Path) -> dict[str, list[Example]]:
    return {split: read_conll(data_dir / "conll2003" / f"{split}.txt") for split in ("train", "dev", "test")}


@pytest.fixture(scope="module")
def conll04(data_dir: Path) -> dict[str, list[Example]]:
    splits = ("train", "dev", "test", "train_dev")
    return {s: read_spert(data_dir / "conll04" / f"conll04_{s}.json") for s in splits}


@pytest.fixture(scope="module")
def ade(data_dir: Path) -> dict[str, list[Example]]:
    names = ("full", "split_0_train", "split_0_test", "split_9_train", "split_9_test")
    return {n: read_spert(data_dir / "ade" / f"ade_{n}.json") for n in names}


@pytest.fixture(scope="module")
def scierc(data_dir: Path) -> dict[str, list[Example]]:
    return {s: read_spert(data_dir / "scierc" / f"scierc_{s}.json") for s in ("train", "dev", "test")}


@pytest.mark.parametrize(
    "split, sentences, tokens, per, loc, org, misc",
    [
        ("train", 14041, 203621, 6600, 7140, 6321, 3438),
        ("dev", 3250, 51362, 1842, 1837, 1341, 922),
        ("test", 3453, 46435, 1617, 1668, 1661, 702),
    ],
)
def test_conll2003_counts(conll2003, split, sentences, tokens, per, loc, org, misc):
    assert stats(conll2003[split]) == {
        "sentences": sentences,
        "tokens": tokens,
        "entities": {"PER": per, "LOC": loc, "ORG": org, "MISC": misc},
        "relations": {},
    }


def test_conll2003_ids_and_text(conll2003):
    first = conll2003["train"][0]
    assert first.id == "train.txt:3"  # line 1 is -DOCSTART-, line 2 blank
    assert first.words[:3] == ["EU", "rejects", "German"]
    spans = [(first.span_text(e), e.label) for e in first.entities]
    assert spans == [("EU", "ORG"), ("German", "MISC"), ("British", "MISC")]
    # the quirk of this copy: B-MISC directly after O ("the Atlanta Games") still starts one entity
    (sentence,) = [x for x in conll2003["train"] if "coxless pairs at the Atlanta Games" in x.text]
    assert "Atlanta Games" in [sentence.span_text(e) for e in sentence.entities if e.label == "MISC"]


def test_conll2003_read_as_iob2_points_at_the_line(data_dir):
    path = data_dir / "conll2003" / "test.txt"
    with pytest.raises(DataError, match="use scheme 'iob1'") as info:
        read_conll(path, scheme="iob2")
    err = info.value
    assert err.path == str(path) and err.line is not None
    assert path.read_text().splitlines()[err.line - 1].split()[-1].startswith("I-")


@pytest.mark.parametrize(
    "split, sentences, tokens, entities, relations",
    [
        ("train", 922, 26525, (1219, 616, 1087, 455), (256, 179, 271, 330, 247)),
        ("dev", 231, 6993, (322, 170, 283, 118), (69, 42, 76, 91, 65)),
        ("test", 288, 8336, (427, 198, 321, 133), (76, 47, 105, 100, 94)),
        ("train_dev", 1153, 33518, (1541, 786, 1370, 573), (325, 221, 347, 421, 312)),
    ],
)
def test_conll04_counts(conll04, split, sentences, tokens, entities, relations):
    assert stats(conll04[split]) == {
        "sentences": sentences,
        "tokens": tokens,
        "entities": dict(zip(("Loc", "Org", "Peop", "Other"), entities)),
        "relations": dict(zip(("Work_For", "Kill", "OrgBased_In", "Live_In", "Located_In"), relations)),
    }


def test_conll04_relation_directions(conll04):
    signature = {
        "Work_For": ("Peop", "Org"),
        "Kill": ("Peop", "Peop"),
        "OrgBased_In": ("Org", "Loc"),
        "Live_In": ("Peop", "Loc"),
        "Located_In": ("Loc", "Loc"),
    }
    found = Counter((r.label, r.head.label, r.tail.label) for x in conll04["train_dev"] for r in x.relations)
    assert {(label, *signature[label]) for label, _, _ in found} == set(found)


@pytest.mark.parametrize(
    "name, sentences, tokens, adverse, drug, relations",
    [
        ("full", 4272, 90714, 5776, 5063, 6821),
        ("split_0_train", 3845, 81959, 5200, 4569, 6155),
        ("split_0_test", 427, 8755, 576, 494, 666),
        ("split_9_train", 3843, 81473, 5209, 4561, 6173),
        ("split_9_test", 429, 9241, 567, 502, 648),
    ],
)
def test_ade_counts(ade, name, sentences, tokens, adverse, drug, relations):
    assert stats(ade[name]) == {
        "sentences": sentences,
        "tokens": tokens,
        "entities": {"Adverse-Effect": adverse, "Drug": drug},
        "relations": {"Adverse-Effect": relations},
    }


def test_ade_relations_survive_entity_sorting(ade):
    # ADE entity lists are often out of position order; every relation must still go Adverse-Effect -> Drug
    pairs = Counter((r.head.label, r.tail.label) for x in ade["full"] for r in x.relations)
    assert pairs == {("Adverse-Effect", "Drug"): 6821}
    for x in ade["full"]:
        x.validate()
    assert {x.id for x in ade["split_0_train"]} | {x.id for x in ade["split_0_test"]} == {x.id for x in ade["full"]}


@pytest.mark.parametrize(
    "split, sentences, tokens, entities, relations",
    [
        ("train", 1861, 45412, (1445, 1536, 950, 894, 542, 231), (1690, 400, 313, 298, 179, 173, 166)),
        ("dev", 275, 6521, (216, 212, 147, 127, 71, 38), (214, 59, 50, 44, 27, 32, 29)),
        ("test", 551, 13401, (430, 522, 241, 263, 158, 71), (533, 123, 91, 67, 63, 59, 38)),
    ],
)
def test_scierc_counts(scierc, split, sentences, tokens, entities, relations):
    entity_types = ("Method", "OtherScientificTerm", "Generic", "Task", "Material", "Metric")
    relation_types = ("Used-for", "Conjunction", "Evaluate-for", "Hyponym-of", "Part-of", "Feature-of", "Compare")
    assert stats(scierc[split]) == {
        "sentences": sentences,
        "tokens": tokens,
        "entities": dict(zip(entity_types, entities)),
        "relations": dict(zip(relation_types, relations)),
    }


# --------------------------------------------------------------------------------------------- tag schemes
IOB1 = ["I-PER", "I-PER", "B-PER", "O", "I-LOC", "I-ORG", "B-ORG", "I-ORG"]
IOB2 = ["B-PER", "I-PER", "B-PER", "O", "B-LOC", "B-ORG", "B-ORG", "I-ORG"]
BIOES = ["B-PER", "E-PER", "S-PER", "O", "S-LOC", "S-ORG", "B-ORG", "E-ORG"]
BILOU = ["B-PER", "L-PER", "U-PER", "O", "U-LOC", "U-ORG", "B-ORG", "L-ORG"]
SPANS = [(0, 2, "PER"), (2, 3, "PER"), (4, 5, "LOC"), (5, 6, "ORG"), (6, 8, "ORG")]


@pytest.mark.parametrize("tags, scheme", [(IOB1, "iob1"), (IOB2, "iob2"), (BIOES, "bioes"), (BILOU, "bioes")])
def test_detect_and_decode(tags, scheme):
    assert detect_scheme([["O"], tags]) == scheme
    assert spans_from_tags(tags, scheme) == SPANS


def test_detect_scheme_edge_cases():
    assert detect_scheme([["O", "O"], []]) == "iob2"
    assert detect_scheme([["B-X", "I-X"], ["I-X"]]) == "iob1"  # one I- at sentence start is enough
    assert detect_scheme([["B-X", "I-Y"]]) == "iob1"  # I- of another type starts an entity
    assert detect_scheme([["S-X", "I-Y"]]) == "bioes"


def test_iob1_and_iob2_agree_on_iob2_tags():
    assert spans_from_tags(IOB2, "iob1") == SPANS
    assert spans_from_tags(IOB2, "bio") == SPANS
    assert spans_from_tags(BILOU, "bilou") == SPANS


def test_iob2_tags_inverse():
    assert iob2_tags(8, SPANS) == IOB2
    assert iob2_tags(3, []) == ["O", "O", "O"]
    with pytest.raises(ValueError, match="overlaps"):
        iob2_tags(4, [(0, 3, "A"), (1, 2, "B")])
    with pytest.raises(ValueError, match="outside"):
        iob2_tags(2, [(1, 3, "A")])


@pytest.mark.parametrize(
    "tags, scheme, position, match",
    [
        (["O", "B_PER"], "iob2", 1, "PREFIX-TYPE"),
        (["O", "X-PER"], "iob1", 1, "PREFIX-TYPE"),
        (["B-"], "iob2", 0, "PREFIX-TYPE"),
        (["o"], "iob2", 0, "PREFIX-TYPE"),
        (["O", "I-PER"], "iob2", 1, "use scheme 'iob1'"),
        (["B-LOC", "I-PER"], "iob2", 1, "use scheme 'iob1'"),
        (["S-PER"], "iob2", 0, "scheme 'bioes'"),
        (["B-PER", "O"], "bioes", 1, "not closed"),
        (["B-PER", "I-PER"], "bioes", 1, "ends inside"),
        (["O", "E-PER"], "bioes", 1, "without a preceding B-PER"),
        (["B-PER", "E-LOC"], "bioes", 1, "not closed"),
    ],
)
def test_bad_tags_name_position_and_tag(tags, scheme, position, match):
    with pytest.raises(TagError, match=match) as info:
        spans_from_tags(tags, scheme)
    assert info.value.position == position and info.value.tag == tags[position]
    assert f"token {position}" in str(info.value)


def test_unknown_scheme():
    with pytest.raises(ValueError, match="iob1, iob2, bioes"):
        spans_from_tags(["O"], "bilouxx")


# --------------------------------------------------------------------------------------------- CoNLL files
def test_conll_two_columns_docstart_blank_runs(tmp_path):
    path = write(
        tmp_path / "small.conll",
        "-DOCSTART- O\n\nJohn B-PER\nSmith I-PER\nsleeps O\n\n\n\nIn O\nParis B-LOC\n\n-DOCSTART- O\nBye O\n",
    )
    examples = read_conll(path)
    assert [x.id for x in examples] == ["small.conll:3", "small.conll:9", "small.conll:13"]
    assert examples[0].text == "John Smith sleeps"
    assert examples[0].entities == [Entity(0, 10, "PER")]
    assert [examples[1].span_text(e) for e in examples[1].entities] == ["Paris"]
    assert examples[2].entities == []


def test_conll_tab_separated_tokens_with_spaces(tmp_path):
    path = write(tmp_path / "data.tsv", "New York\tNNP\tB-LOC\nis\tVBZ\tO\nbig\tJJ\tO\n")
    (example,) = read_conll(path)
    assert example.words == ["New York", "is", "big"]
    assert [(example.span_text(e), e.label) for e in example.entities] == [("New York", "LOC")]


def test_conll_columns_scheme_and_crlf(tmp_path):
    path = write(tmp_path / "bioes.txt", "S-PER\tAnn\r\nB-ORG\tAcme\r\nE-ORG\tInc\r\n")
    (example,) = read_conll(path, tag_column=0, text_column=1)
    assert [(example.span_text(e), e.label) for e in example.entities] == [("Ann", "PER"), ("Acme Inc", "ORG")]
    iob1 = write(tmp_path / "iob1.txt", "Ann I-PER\nBob B-PER\n")
    assert len(read_conll(iob1, scheme="iob1")[0].entities) == 2
    with pytest.raises(DataError, match="use scheme 'iob1'"):
        read_conll(iob1, scheme="iob2")


def test_conll_missing_file(tmp_path):
    with pytest.raises(DataError, match="does not exist") as info:
        read_conll(tmp_path / "nope.txt")
    assert info.value.path == str(tmp_path / "nope.txt")


def test_conll_empty_file(tmp_path):
    with pytest.raises(DataError, match="no sentences"):
        read_conll(write(tmp_path / "empty.txt", "-DOCSTART- -X- O O\n\n\n"))


def test_conll_wrong_column_count(tmp_path):
    path = write(tmp_path / "bad.txt", "EU NNP I-ORG\nrejects VBZ O\n\nGerman I-MISC\n")
    with pytest.raises(DataError, match=r"expected 3 columns \(as on line 1\), found 2") as info:
        read_conll(path)
    assert info.value.line == 4
    assert str(info.value).startswith(f"{path}:4: ")


def test_conll_unknown_tag_names_line(tmp_path):
    path = write(tmp_path / "bad.txt", "EU B-ORG\n\nrejects O\nGerman B_MISC\n")
    with pytest.raises(DataError, match="PREFIX-TYPE") as info:
        read_conll(path)
    assert info.value.line == 4 and "PREFIX-TYPE" in info.value.message and "B_MISC" in info.value.message


def test_conll_broken_bioes_names_line(tmp_path):
    path = write(tmp_path / "bad.txt", "Ann S-PER\n\nAcme B-ORG\nsays O\n")
    with pytest.raises(DataError, match="not closed") as info:
        read_conll(path)
    assert info.value.line == 4


@pytest.mark.parametrize(
    "text, options, match",
    [
        ("EU\nrejects\n", {}, "at least 2 columns"),
        ("EU B-ORG\n", {"tag_column": 5}, "tag_column=5 is out of range"),
        ("EU B-ORG\n", {"tag_column": 0}, "name the same column"),
    ],
)
def test_conll_bad_columns(tmp_path, text, options, match):
    with pytest.raises(DataError, match=match) as info:
        read_conll(write(tmp_path / "x.txt", text), **options)
    assert info.value.line == 1


# --------------------------------------------------------------------------------------------- SpERT JSON
def spert_file(tmp_path: Path, data) -> Path:
    return write(tmp_path / "data.json", json.dumps(data))


def test_spert_unsorted_entities_and_duplicate_relations(tmp_path):
    record = {
        "tokens": ["aspirin", "caused", "bad", "rash"],
        "entities": [{"type": "AE", "start": 2, "end": 4}, {"type": "Drug", "start": 0, "end": 1}],
        "relations": [{"type": "causes", "head": 0, "tail": 1}, {"type": "causes", "head": 0, "tail": 1}],
        "orig_id": 7,
    }
    (example,) = read_spert(spert_file(tmp_path, [record]))
    assert example.id == "7"
    assert [example.span_text(e) for e in example.entities] == ["aspirin", "bad rash"]
    assert [(example.span_text(r.head), example.span_text(r.tail)) for r in example.relations] == [
        ("bad rash", "aspirin"),
        ("bad rash", "aspirin"),
    ]


def test_spert_missing_file(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        read_spert(tmp_path / "missing.json")


def test_spert_broken_json(tmp_path):
    path = write(tmp_path / "broken.json", '[{"tokens": ["a"],\n "entities": [}]')
    with pytest.raises(DataError, match=r"not valid JSON: .* at line 2 column \d+") as info:
        read_spert(path)
    assert info.value.line == 2


def test_spert_empty_list(tmp_path):
    with pytest.raises(DataError, match="empty list"):
        read_spert(spert_file(tmp_path, []))


def test_spert_top_level_not_a_list(tmp_path):
    with pytest.raises(DataError, match="top level is a JSON object.*format 'jsonl'"):
        read_spert(spert_file(tmp_path, {"tokens": []}))


def test_spert_missing_keys(tmp_path):
    with pytest.raises(DataError, match="record 1: missing key.*relations"):
        read_spert(spert_file(tmp_path, [{"tokens": [], "entities": [], "relations": []}, {"tokens": []}]))


@pytest.mark.parametrize(
    "entity, match",
    [
        ({"type": "X", "start": 1, "end": 3}, r"entity 0 span \[1, 3\) is out of range for 2 tokens"),
        ({"type": "X", "start": 1, "end": 1}, r"entity 0 span \[1, 1\) is empty"),
        ({"type": "X", "start": -1, "end": 1}, "out of range"),
        ({"type": "X", "start": 0}, "type, start and end"),
    ],
)
def test_spert_bad_span(tmp_path, entity, match):
    data = [{"tokens": ["a", "b"], "entities": [entity], "relations": []}]
    with pytest.raises(DataError, match=match) as info:
        read_spert(spert_file(tmp_path, data))
    assert info.value.record == 0 and info.value.path == str(tmp_path / "data.json")


def test_spert_relation_index_out_of_range(tmp_path):
    data = [
        {
            "tokens": ["a", "b"],
            "entities": [{"type": "X", "start": 0, "end": 1}, {"type": "X", "start": 1, "end": 2}],
            "relations": [{"type": "R", "head": 0, "tail": 2}],
        }
    ]
    with pytest.raises(DataError, match="record 0: relation 0 tail 2 is not an index into the 2 entities"):
        read_spert(spert_file(tmp_path, data))


# --------------------------------------------------------------------------------------------- JSONL
def jsonl_file(tmp_path: Path, *records, name: str = "data.jsonl") -> Path:
    return write(tmp_path / name, "".join(json.dumps(r) + "\n" for r in records))


def test_jsonl_nerre_preset_with_relations(tmp_path):
    record = {
        "id": "a",
        "text": "Ann works for Acme.",
        "entities": [
            {"label": "ORG", "text": "Acme", "start": 14, "end": 18},
            {"label": "PER", "text": "Ann", "start": 0, "end": 3},
        ],
        "relations": [{"head": 1, "tail": 0, "type": "Work_For"}],
    }
    (example,) = read_jsonl(jsonl_file(tmp_path, record))
    assert example.id == "a"
    assert example.relations == [Relation(Entity(0, 3, "PER"), Entity(14, 18, "ORG"), "Work_For")]


def test_jsonl_presidio_preset_and_explicit_keys(tmp_path):
    record = {
        "full_text": "Call Bob at 555-1234",
        "spans": [
            {"entity_type": "PERSON", "entity_value": "Bob", "start_position": 5, "end_position": 8},
            {"entity_type": "PHONE", "start_position": 12, "end_position": 20},  # the value is optional
        ],
    }
    path = jsonl_file(tmp_path, record)
    (example,) = read_jsonl(path, text_field="full_text", spans_field="spans")
    assert example.id == "data.jsonl:1"
    assert [(example.span_text(e), e.label) for e in example.entities] == [("Bob", "PERSON"), ("555-1234", "PHONE")]
    custom = {"t": "Bob", "ents": [{"kind": "P", "from": 0, "to": 3}]}
    keys = {"label_key": "kind", "start_key": "from", "end_key": "to"}
    (other,) = read_jsonl(jsonl_file(tmp_path, custom, name="c.jsonl"), text_field="t", spans_field="ents", **keys)
    assert other.entities == [Entity(0, 3, "P")]


def test_jsonl_unknown_span_keys(tmp_path):
    path = jsonl_file(tmp_path, {"text": "Bob", "entities": []}, {"text": "Bob", "entities": [{"tag": "P", "s": 0}]})
    with pytest.raises(DataError, match="cannot tell the span keys.*set the reader options label_key") as info:
        read_jsonl(path)
    assert info.value.line == 2


def test_jsonl_value_mismatch(tmp_path):
    good = {"text": "Ann", "entities": []}
    bad = {"text": "Ann met Bob", "entities": [{"label": "PER", "text": "Bob", "start": 7, "end": 10}]}
    with pytest.raises(DataError, match=r"'text' is 'Bob' but text\[7:10\] is ' Bo'") as info:
        read_jsonl(jsonl_file(tmp_path, good, bad))
    assert info.value.line == 2


def test_jsonl_span_out_of_range(tmp_path):
    record = {"text": "Ann", "entities": [{"label": "PER", "start": 0, "end": 4}]}
    with pytest.raises(DataError, match=r"span 0 \[0, 4\) is out of range for a text of 3 characters"):
        read_jsonl(jsonl_file(tmp_path, record))


def test_jsonl_relation_index_out_of_range(tmp_path):
    record = {
        "text": "Ann",
        "entities": [{"label": "PER", "start": 0, "end": 3}],
        "relations": [{"head": 0, "tail": 1, "label": "R"}],
    }
    with pytest.raises(DataError, match="relation 0 tail 1 is not an index into the 1 spans") as info:
        read_jsonl(jsonl_file(tmp_path, record))
    assert info.value.line == 1


def test_jsonl_broken_json_line(tmp_path):
    path = write(tmp_path / "x.jsonl", '{"text": "a", "entities": []}\n\n{"text": "b",\n')
    with pytest.raises(DataError, match="not valid JSON") as info:
        read_jsonl(path)
    assert info.value.line == 3


def test_jsonl_missing_spans_field(tmp_path):
    with pytest.raises(DataError, match="'entities' must hold a list of spans"):
        read_jsonl(jsonl_file(tmp_path, {"text": "a"}))


def test_jsonl_empty_file(tmp_path):
    with pytest.raises(DataError, match="no records"):
        read_jsonl(write(tmp_path / "empty.jsonl", "\n  \n"))


def test_jsonl_missing_file(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        read_jsonl(tmp_path / "missing.jsonl")


def test_write_jsonl_round_trip(tmp_path):
    spans = [(0, 3, "AE"), (1, 3, "Drug"), (3, 4, "AE")]  # nested spans, and a repeated relation below
    nested = Example.from_tokens(["Ünïcode", "Drug", "X", "rash"], spans, [(0, 1, "R")] * 2, id="7")
    plain = Example("no entities here", id=None)
    path = write_jsonl([nested, plain], tmp_path / "out" / "pred.jsonl")
    assert "Ünïcode" in path.read_text(encoding="utf-8")
    back = read_jsonl(path)
    assert len(back) == 2
    for original, copy in zip([nested, plain], back):
        assert copy.to_dict() == original.to_dict()  # id, text, entities, relations; tokens are not in the format


# --------------------------------------------------------------------------------------------- Hugging Face
@pytest.fixture
def hf_dict(tmp_path):
    import datasets

    features = datasets.Features(
        {
            "id": datasets.Value("string"),
            "tokens": datasets.List(datasets.Value("string")),
            "ner_tags": datasets.List(datasets.ClassLabel(names=["O", "B-PER", "I-PER", "B-LOC", "I-LOC"])),
        }
    )
    rows = {"id": ["s1", "s2"], "tokens": [["Ann", "Lee", "in", "Rome"], ["Hi"]], "ner_tags": [[1, 2, 0, 3], [0]]}
    path = tmp_path / "hf"
    datasets.DatasetDict({"train": datasets.Dataset.from_dict(rows, features=features)}).save_to_disk(str(path))
    return path


def test_hf_classlabel_ints(hf_dict):
    assert detect_format(hf_dict) == "hf"
    first, second = read_hf(hf_dict, split="train")
    assert (first.id, second.id) == ("s1", "s2")
    assert [(first.span_text(e), e.label) for e in first.entities] == [("Ann Lee", "PER"), ("Rome", "LOC")]
    assert load_examples(hf_dict, split="train")[0].same_annotations(first)


def test_hf_dict_needs_split(hf_dict):
    with pytest.raises(DataError, match="splits train; pass split="):
        read_hf(hf_dict)
    with pytest.raises(DataError, match="no split 'test'; the splits are train"):
        read_hf(hf_dict, split="test")


def test_hf_string_tags_and_errors(tmp_path):
    import datasets

    rows = {"words": [["Ann", "Lee"], ["Bob"]], "tags": [["I-PER", "I-PER"], ["I-PER"]]}
    path = tmp_path / "strings"
    datasets.Dataset.from_dict(rows).save_to_disk(str(path))
    first, second = read_hf(path, tokens_column="words", tags_column="tags")
    assert first.entities == [Entity(0, 7, "PER")] and first.id == "strings:0"
    with pytest.raises(DataError, match="no column 'tokens'; the columns are words, tags"):
        read_hf(path)
    with pytest.raises(DataError, match="use scheme 'iob1'") as info:
        read_hf(path, tokens_column="words", tags_column="tags", scheme="iob2")
    assert info.value.record == 0


# --------------------------------------------------------------------------------------------- dispatch
def test_detect_format_by_content(tmp_path, hf_dict):
    assert FORMATS == ("conll", "spert", "jsonl", "json", "hf", "brat", "doccano", "labelstudio", "spacy")
    spert = write(tmp_path / "a.json", json.dumps([{"tokens": ["Ann"], "entities": [], "relations": []}]))
    lines = write(tmp_path / "a.JSONL", json.dumps({"text": "Ann", "entities": [{"start": 0, "end": 3, "label": "P"}]}))
    columns = write(tmp_path / "eng.train", "-DOCSTART- O\n\nAnn I-PER\nlives O\n\nBob I-PER\n")
    assert [detect_format(p) for p in (spert, lines, columns)] == ["spert", "jsonl", "conll"]
    assert detect_format(hf_dict) == "hf"
    with pytest.raises(DataError, match="does not exist"):
        detect_format(tmp_path / "missing.txt")


def test_load_examples_dispatch_and_options(tmp_path):
    path = write(tmp_path / "a.txt", "Ann I-PER\nBob B-PER\n")
    assert len(load_examples(path)[0].entities) == 2
    assert len(load_examples(path, format="conll", scheme="iob1")[0].entities) == 2
    assert len(load_examples(path, options=ReaderOptions(scheme="iob1"))[0].entities) == 2
    with pytest.raises(ConfigError, match="unknown format 'xml'; choose one of conll, spert, jsonl, json, hf"):
        load_examples(path, format="xml")
    with pytest.raises(ConfigError, match="reader option.*split do not apply to format 'conll'; it takes scheme"):
        load_examples(path, split="train")
    with pytest.raises(ConfigError, match="unknown reader option.*labelkey; the reader options are scheme"):
        load_examples(path, options={"labelkey": "x"})


def test_to_dataset_round_trip():
    examples = [
        Example.from_tokens(["a", "b", "c"], [(0, 2, "X"), (1, 2, "Y")], [(1, 0, "R")], id="1"),
        Example("nothing", id=None),
    ]
    ds = to_dataset(examples)
    assert ds.column_names == ["id", "text", "tokens", "entities", "relations"]
    assert ds[0]["tokens"] == [[0, 1], [2, 3], [4, 5]]
    assert ds[0]["entities"] == [{"start": 0, "end": 3, "label": "X"}, {"start": 2, "end": 3, "label": "Y"}]
    assert ds[0]["relations"] == [{"head": 1, "tail": 0, "label": "R"}]
    assert from_dataset(ds) == examples
