"""Scores from the constrained decoder's decisions, the precision/recall knob, and scores in every output."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from test_decoding import SCHEMA, SCHEMAS, TESTS, setup, train_tiny
from tiny import DEFAULT_TEXTS, tiny_tokenizer

from nerre.adapter import AdapterSettings
from nerre.decoding import DecodeOptions, FaithfulDecoder, token_table
from nerre.decoding.confidence import attach_scores, document_score, keep_confident
from nerre.decoding.passes import ModelPasses
from nerre.example import Entity, Example, Relation
from nerre.formulation import TaggedText
from nerre.loaders import read_jsonl
from nerre.metrics import evaluate
from nerre.predict import Extractor, Prediction, rank_predictions
from nerre.prompt import PromptBuilder, prompt_ids
from nerre.schema import Schema

TEXTS = [*DEFAULT_TEXTS[:2], "Marie Curie was born in Warsaw and worked in Paris ."]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def decode(model, tokenizer, formulation, prompts, texts, **options):
    decoder = FaithfulDecoder(model, tokenizer, prompts, formulation, DecodeOptions(**options))
    answers = decoder.generate(texts)
    read, _ = formulation.parse(texts, answers)
    attach_scores(formulation, token_table(tokenizer), texts, answers, decoder.token_ids, decoder.token_logprobs, read)
    return answers, read, decoder


# ----------------------------------------------------------------------------- the definition
def test_scores_are_the_products_of_the_decisions_over_the_allowed_candidates():
    """Recomputed from scratch with one teacher-forced forward pass of the whole answer: at each answer token,
    the softmax of the model's logits over the tokens the grammar allowed there; an entity's score is the
    product over the tokens from its opening tag to its closing tag, a relation's over its line."""
    model, tokenizer, formulation, prompts = setup(SCHEMAS["relations"], "byte_level")
    # a budget the random model cannot exhaust: near its end the decoder finishes without markup (fewer
    # candidates, forced tokens), which this recomputation over the full grammar does not model
    answers, read, decoder = decode(model, tokenizer, formulation, prompts, TEXTS, speculate=16, max_new_tokens=4000)
    table = token_table(tokenizer)
    checked = 0
    for text, answer, ids, example in zip(TEXTS, answers, decoder.token_ids, read):
        prompt = prompt_ids(tokenizer, prompts, text)
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([prompt + ids])).logits[0, len(prompt) - 1 :]
        allowed = formulation.grammar(text, table).candidates(ids)
        logp = [torch.log_softmax(logits[k, c], 0)[c.index(t)].item() for k, (c, t) in enumerate(zip(allowed, ids))]
        assert decoder.token_logprobs[read.index(example)][: len(ids)] == pytest.approx(logp, abs=1e-4)
        ends = [len(b"".join(table.token_bytes[t] for t in ids[: k + 1])) for k in range(len(ids))]
        entity_ranges, relation_ranges = formulation.answer_spans(text, answer, example.entities)
        assert set(entity_ranges) == set(example.entities)
        for entity, (begin, end) in entity_ranges.items():
            label = formulation.schema.entity(entity.label).display
            assert answer[begin:end].startswith(f"<{label}>") and answer[begin:end].endswith(f"</{label}>")
            first = next(k for k, e in enumerate(ends) if e > len(answer[:begin].encode()))
            last = next(k for k, e in enumerate(ends) if e >= len(answer[:end].encode()))
            assert example.scores[entity] == pytest.approx(math.exp(sum(logp[first : last + 1])), rel=1e-3, abs=1e-9)
            checked += 1
        for relation, (begin, end) in relation_ranges:
            assert answer[begin] == "\n" and "\n" not in answer[begin + 1 : end] and relation in example.scores
        assert example.score == pytest.approx(document_score(decoder.token_logprobs[read.index(example)]))
        assert all(0.0 <= v <= 1.0 for v in example.scores.values())
    assert checked >= 5


def test_scores_cost_no_decision_and_are_deterministic():
    model, tokenizer, formulation, prompts = setup(SCHEMAS["relations"], "byte_level")
    plain = FaithfulDecoder(model, tokenizer, prompts, formulation, DecodeOptions(scores=False)).generate(TEXTS)
    answers, first, _ = decode(model, tokenizer, formulation, prompts, TEXTS)
    _, same, _ = decode(model, tokenizer, formulation, prompts, TEXTS)
    _, stepwise, _ = decode(model, tokenizer, formulation, prompts, TEXTS, batch_size=1, speculate=0)
    assert answers == plain  # scoring changes no choice
    assert [e.scores for e in first] == [e.scores for e in same] and [e.score for e in first] == [e.score for e in same]
    for a, b in zip(first, stepwise):  # packing and speculation: the same up to floating-point noise
        assert a.scores.keys() == b.scores.keys() and a.score == pytest.approx(b.score, rel=1e-4)
        assert all(a.scores[k] == pytest.approx(b.scores[k], rel=1e-3) for k in a.scores)
    passes = ModelPasses(model)
    torch.manual_seed(1)
    for _ in range(50):
        hidden = torch.randn(model.config.hidden_size) * 3
        candidates = sorted(torch.randperm(len(tokenizer))[:7].tolist())
        choice, decision = passes.choose(hidden, candidates)
        assert choice == passes.best(hidden, candidates)
        (logprob,) = passes.log_probs([decision])
        full = model.lm_head(hidden)  # softcapping included in the probabilities
        capped = torch.tanh(full / 30.0) * 30.0
        assert logprob == pytest.approx(torch.log_softmax(capped[candidates], 0)[candidates.index(choice)].item(), abs=1e-5)
    assert passes.choose(hidden, [5]) == (5, None) and passes.log_probs([None, decision, None]) == [0.0, logprob, 0.0]
    assert passes.log_probs([decision], temperature=2.0)[0] == pytest.approx(
        torch.log_softmax(capped[candidates] / 2.0, 0)[candidates.index(choice)].item(), abs=1e-5)


# ----------------------------------------------------------------------------- a trained model: the knob
@pytest.fixture(scope="module")
def trained():
    examples = read_jsonl(TESTS / "data" / "tiny.jsonl")
    formulation = TaggedText(Schema(**SCHEMA))
    prompts = PromptBuilder(formulation)
    texts = [prompts.prompt(ex.text) + formulation.encode(ex) for ex in examples] * 4
    tokenizer = tiny_tokenizer(texts, vocab_size=2000)
    model = train_tiny(tokenizer, formulation, prompts, examples)
    return model, tokenizer, formulation, prompts, examples


def test_a_trained_model_is_confident_where_it_is_right(trained):
    model, tokenizer, formulation, prompts, examples = trained
    _, read, _ = decode(model, tokenizer, formulation, prompts, examples)
    assert all(p.same_annotations(g) for p, g in zip(read, examples))
    scores = [v for p in read for v in p.scores.values()]
    assert len(scores) == 7 + 4 and min(scores) > 0.5


def test_the_entity_bias_moves_precision_and_recall_in_opposite_directions(trained):
    model, tokenizer, formulation, prompts, examples = trained
    results = {}
    for bias in (-1e4, 0.0, 8.0):
        _, read, _ = decode(model, tokenizer, formulation, prompts, examples, entity_bias=bias)
        scores = evaluate(examples, read)["entities"]
        results[bias] = (sum(len(p.entities) for p in read), scores["precision"], scores["recall"])
    (none, _, recall_low), (base, precision_base, recall_base), (many, precision_high, recall_high) = results.values()
    assert none == 0 and recall_low == 0.0  # a large negative bias opens no tag
    assert base == 7 and precision_base == recall_base == 1.0
    assert many > base and recall_high == 1.0 and precision_high < precision_base  # more tags: precision pays


def test_the_relation_bias_writes_more_or_no_relation_lines(trained):
    model, tokenizer, formulation, prompts, examples = trained
    counts = {}
    for bias in (-1e4, 0.0, 1e4):
        _, read, _ = decode(model, tokenizer, formulation, prompts, examples, relation_bias=bias)
        counts[bias] = sum(len(p.relations) for p in read)
    assert counts[-1e4] == 0 < counts[0.0] == 4 < counts[1e4]


def test_a_score_threshold_keeps_only_the_confident(trained):
    model, tokenizer, formulation, prompts, examples = trained
    _, read, _ = decode(model, tokenizer, formulation, prompts, examples)
    example = read[2]  # Acme hired Bob Lee in Rome: three entities, two relations
    weakest = min(example.entities, key=example.scores.get)
    dropped = keep_confident(example, min_entity=example.scores[weakest] + 1e-9)
    assert weakest not in example.entities and len(example.entities) == 2
    assert all(weakest not in (r.head, r.tail) for r in example.relations)
    assert dropped["entities"] == 1 and dropped["relations_with_a_dropped_argument"] >= 1
    assert set(example.scores) == set(example.entities) | set(example.relations)
    other = read[1]
    assert len(other.relations) == 1 and keep_confident(other, min_relation=1.01) == {"relations": 1}
    assert other.relations == [] and len(other.entities) == 2


def test_the_extractor_scores_thresholds_and_ranks(trained):
    model, tokenizer, formulation, _, examples = trained
    settings = AdapterSettings(base_model="tiny", formulation="tagged", schema=SCHEMA, max_sequence_tokens=512)
    extractor = Extractor(model, tokenizer, settings, constrained=True, batch_size=3)
    predictions = extractor([ex.text for ex in examples])
    assert all(p.example.score is not None and len(p.example.scores) == len(p.example.entities) +
               len(p.example.relations) for p in predictions)
    record = predictions[2].to_dict()
    assert record["score"] == round(predictions[2].example.score, 6)
    assert all("score" in e for e in record["entities"]) and all("score" in r for r in record["relations"])
    ranked = rank_predictions(predictions, "uncertainty", limit=2)
    ordered = sorted(p.example.score for p in predictions)
    assert [p.example.score for p in ranked] == ordered[:2]
    strict = Extractor(model, tokenizer, settings, constrained=True, min_entity_score=1.01)
    assert all(not p.example.entities and not p.example.relations for p in strict([ex.text for ex in examples]))
    assert strict.dropped == {"entities": 7, "relations_with_a_dropped_argument": 4}


def test_the_extractor_decodes_with_the_adapters_tuned_decoding_unless_told_otherwise(trained):
    model, tokenizer, _, _, examples = trained
    texts = [ex.text for ex in examples]
    tuned = AdapterSettings(base_model="tiny", formulation="tagged", schema=SCHEMA, max_sequence_tokens=512,
                            decoding={"min_entity_score": 1.01, "relation_bias": -10000})
    extractor = Extractor(model, tokenizer, tuned, constrained=True)
    assert (extractor.options.min_entity_score, extractor.options.relation_bias) == (1.01, -10000.0)
    assert all(not p.example.entities and not p.example.relations for p in extractor(texts))
    assert extractor.dropped == {"entities": 7}  # no relation line was started to lose its arguments
    told = Extractor(model, tokenizer, tuned, constrained=True, min_entity_score=0.0, relation_bias=0.0)
    plain = Extractor(model, tokenizer, replace(tuned, decoding={}), constrained=True)
    assert [p.example for p in told(texts)] == [p.example for p in plain(texts)]
    assert sum(len(p.example.relations) for p in told(texts)) == 4
    free = Extractor(model, tokenizer, tuned, constrained=False)  # unscored decoding: the tuning does not apply
    assert (free.options.min_entity_score, free.options.relation_bias) == (0.0, 0.0)


def test_tuned_decoding_round_trips_through_nerre_json_and_unknown_knobs_are_named(tiny_adapter, tmp_path, capsys):
    import shutil

    from nerre.adapter import SETTINGS_FILE, read_settings
    from nerre.cli import run
    from nerre.errors import AdapterError

    adapter = tmp_path / "adapter"
    shutil.copytree(tiny_adapter, adapter)
    assert "decoding" not in json.loads((adapter / SETTINGS_FILE).read_text())  # untuned: not written
    settings = read_settings(adapter)
    settings.decoding = {"relation_bias": -10000, "min_relation_score": 0.5}
    (adapter / SETTINGS_FILE).write_text(settings.to_json())
    assert read_settings(adapter).decoding == {"relation_bias": -10000.0, "min_relation_score": 0.5}
    gold = str(TESTS / "data" / "tiny.jsonl")
    run(["predict", "--adapter", str(adapter), "--input", gold, "--output", str(tmp_path / "tuned.jsonl")])
    summary = json.loads(capsys.readouterr().out)
    assert summary["decoding"] == {"relation_bias": -10000.0, "min_relation_score": 0.5} and summary["relations"] == 0
    run(["predict", "--adapter", str(adapter), "--input", gold, "--output", str(tmp_path / "told.jsonl"),
         "--relation_bias", "0", "--min_score", "0"])
    assert "decoding" not in json.loads(capsys.readouterr().out)
    saved = json.loads((adapter / SETTINGS_FILE).read_text())
    (adapter / SETTINGS_FILE).write_text(json.dumps(saved | {"decoding": {"relation_threshold": 0.5}}))
    with pytest.raises(AdapterError, match="unknown knob.s. relation_threshold; the knobs are entity_bias"):
        read_settings(adapter)


def test_rank_keeps_input_order_without_ranking_and_puts_unscored_last():
    predictions = [Prediction(Example(t, id=t, score=s)) for t, s in (("a", 0.9), ("b", None), ("c", 0.1))]
    assert [p.example.id for p in rank_predictions(predictions, "uncertainty")] == ["c", "a", "b"]
    assert [p.example.id for p in rank_predictions(predictions, None, 2)] == ["a", "b"]


def test_windows_keep_their_scores_when_merged():
    from nerre.predict import _merge

    first = Example("John", [Entity(0, 4, "PER")], id="d@0", scores={Entity(0, 4, "PER"): 0.8}, score=0.7)
    head, tail = Entity(0, 4, "ORG"), Entity(5, 9, "LOC")
    second = Example("Acme Rome", [head, tail], [Relation(head, tail, "in")], id="d@6",
                     scores={head: 0.6, tail: 0.5, Relation(head, tail, "in"): 0.4}, score=0.3)
    merged = _merge(Example("John, Acme Rome", id="d"), [(first, {}, ""), (second, {}, "")]).example
    moved = Relation(Entity(6, 10, "ORG"), Entity(11, 15, "LOC"), "in")
    assert merged.scores == {Entity(0, 4, "PER"): 0.8, moved.head: 0.6, moved.tail: 0.5, moved: 0.4}
    assert merged.score == 0.3 and merged.relations == [moved]


def test_scores_take_no_part_in_equality():
    entity = Entity(0, 4, "PER")
    assert Example("John", [entity], scores={entity: 0.1}, score=0.1) == Example("John", [entity])
    assert hash(entity) == hash(Entity(0, 4, "PER"))
    record = Example("John", [entity], scores={entity: 0.25}, score=0.5).to_dict()
    assert record["entities"][0]["score"] == 0.25 and record["score"] == 0.5
    back = Example.from_dict(record)
    assert back.scores == {entity: 0.25} and back.score == 0.5
    assert "score" not in Example("John", [entity]).to_dict()["entities"][0]


def write_scored(path: Path) -> list[Example]:
    """Scored predictions of tests/data/tiny.jsonl: the gold, each second entity weak."""
    gold = read_jsonl(TESTS / "data" / "tiny.jsonl")
    out = []
    for ex in gold:
        pred = Example(ex.text, ex.entities, ex.relations, id=ex.id)
        pred.scores = {e: 0.9 for e in ex.entities} | {r: 0.8 for r in ex.relations}
        if ex.entities:
            pred.scores[ex.entities[1]] = 0.2
        pred.score = 0.2
        out.append(pred)
    path.write_text("".join(json.dumps(p.to_dict()) + "\n" for p in out))
    return out


# ----------------------------------------------------------------------------- scores in every output
def test_jsonl_scores_and_evaluate_min_score(tmp_path, capsys):
    from nerre.cli import run

    write_scored(tmp_path / "pred.jsonl")
    gold = str(TESTS / "data" / "tiny.jsonl")
    run(["evaluate", "--gold", gold, "--pred", str(tmp_path / "pred.jsonl")])
    everything = json.loads(capsys.readouterr().out)
    run(["evaluate", "--gold", gold, "--pred", str(tmp_path / "pred.jsonl"), "--min_score", "0.5"])
    confident = json.loads(capsys.readouterr().out)
    assert everything["entities"]["precision"] == 1.0 and confident["entities"]["precision"] == 1.0
    assert confident["entities"]["recall"] < everything["entities"]["recall"]  # the weak entities dropped
    assert confident["dropped"] == {"entities": 3, "relations_with_a_dropped_argument": 4}
    assert confident["relations"]["strict"]["f1"] == 0.0
    run(["evaluate", "--gold", gold, "--pred", str(tmp_path / "pred.jsonl"), "--min_score", "0.1",
         "--min_relation_score", "0.85"])
    assert json.loads(capsys.readouterr().out)["dropped"] == {"relations": 4}
    with pytest.raises(SystemExit):
        from nerre.cli import main
        main(["evaluate", "--gold", gold, "--pred", gold, "--min_score", "0.5"])
    assert "holds no scores" in capsys.readouterr().err


def test_spacy_scores_survive_docbin_and_to_disk(tmp_path):
    import spacy
    from spacy.tokens import Doc

    from nerre.loaders import read_docbin
    from nerre.spacy_export import from_doc, save_docbin, to_docs

    predictions = write_scored(tmp_path / "pred.jsonl")
    docs, _ = to_docs(predictions)
    assert docs[0].spans["nerre"].attrs["scores"] == [0.9, 0.2]
    assert [t.score for t in docs[0]._.relations] == [0.8] and docs[0]._.nerre_score == 0.2
    head, label, tail = docs[0]._.relations[0]  # still a triple
    save_docbin(docs, tmp_path / "pred.spacy")
    back = read_docbin(tmp_path / "pred.spacy")
    assert [b.scores for b in back] == [p.scores for p in predictions] and back[0].score == 0.2
    docs[1].to_disk(tmp_path / "doc")
    doc = Doc(spacy.blank("xx").vocab).from_disk(tmp_path / "doc")
    assert doc.spans["nerre"].attrs["scores"] == [0.9, 0.2] and [t.score for t in doc._.relations] == [0.8]
    assert from_doc(doc).scores == predictions[1].scores


def test_brat_notes_carry_the_scores(tmp_path):
    from nerre.loaders import ReadNotes, read_brat, write_examples

    predictions = write_scored(tmp_path / "pred.jsonl")
    write_examples(predictions, tmp_path / "brat", "brat")
    ann = (tmp_path / "brat" / "tiny-0.ann").read_text().splitlines()
    assert ann[-3:] == ["#1\tAnnotatorNotes T1\tscore=0.9000", "#2\tAnnotatorNotes T2\tscore=0.2000",
                        "#3\tAnnotatorNotes R1\tscore=0.8000"]
    notes = ReadNotes()
    back = read_brat(tmp_path / "brat", notes=notes)
    assert [b.scores for b in back] == [p.scores for p in predictions] and not notes  # nothing ignored


def test_doccano_holds_the_document_score_only(tmp_path):
    from nerre.loaders import read_doccano, write_examples

    predictions = write_scored(tmp_path / "pred.jsonl")
    lost = write_examples(predictions, tmp_path / "pred.jsonl", "doccano")
    record = json.loads((tmp_path / "pred.jsonl").read_text().splitlines()[0])
    assert record["score"] == 0.2 and all("score" not in e for e in record["entities"])
    assert lost.lines()[0].startswith(f"{sum(len(p.scores) for p in predictions)} entity and relation scores not written")
    assert [e.score for e in read_doccano(tmp_path / "pred.jsonl")] == [0.2] * 4


def test_predict_ranks_the_least_confident_first_and_names_the_adapter(tiny_adapter, tmp_path, capsys):
    from nerre.cli import run

    gold = str(TESTS / "data" / "tiny.jsonl")
    out = tmp_path / "all.jsonl"
    run(["predict", "--adapter", str(tiny_adapter), "--input", gold, "--output", str(out)])
    every = [json.loads(line) for line in out.read_text().splitlines()]
    capsys.readouterr()
    assert all(isinstance(r["score"], float) for r in every)
    assert all("score" in e for r in every for e in r["entities"])
    run(["predict", "--adapter", str(tiny_adapter), "--input", gold, "--output", str(tmp_path / "next.jsonl"),
         "--rank", "uncertainty", "--limit", "2"])
    summary = json.loads(capsys.readouterr().out)
    ranked = [json.loads(line) for line in (tmp_path / "next.jsonl").read_text().splitlines()]
    least = sorted(every, key=lambda r: r["score"])[:2]
    assert [r["id"] for r in ranked] == [r["id"] for r in least] and summary["examples"] == 2
    assert summary["model_version"] == f"nerre:{tiny_adapter.parent.name}/adapter"
    run(["predict", "--adapter", str(tiny_adapter), "--input", gold, "--output", str(tmp_path / "tasks.json"),
         "--to", "labelstudio", "--rank", "uncertainty", "--limit", "1"])
    capsys.readouterr()
    (task,) = json.loads((tmp_path / "tasks.json").read_text())
    prediction = task["predictions"][0]
    assert prediction["model_version"] == summary["model_version"] and prediction["score"] == least[0]["score"]
    assert task["data"]["nerre_id"] == least[0]["id"]
    with pytest.raises(SystemExit):
        from nerre.cli import main
        main(["predict", "--adapter", str(tiny_adapter), "--input", gold, "--output", str(out), "--rank", "random"])
    assert "the one ranking is 'uncertainty'" in capsys.readouterr().err


def test_formats_without_scores_say_so(tmp_path):
    from nerre.loaders import write_examples

    predictions = write_scored(tmp_path / "pred.jsonl")
    lost = write_examples(predictions, tmp_path / "pred.conll", "conll")
    total = sum(len(p.scores) + 1 for p in predictions)
    assert f"{total} scores not written (conll holds none; jsonl, json, labelstudio, spacy and brat do)" in lost.lines()
    assert not write_examples(predictions, tmp_path / "again.jsonl", "jsonl")
