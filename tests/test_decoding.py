"""nerre.decoding: faithful constrained decoding, lossless speculation, unconstrained mode (tiny models, CPU).

The grammar itself (no model) is tested in test_grammar.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import transformers
import yaml
from tiny import DEFAULT_TEXTS, SPECIAL_TOKENS, tiny_llama, tiny_model, tiny_tokenizer
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from nerre.decoding import DecodeOptions, DecodeStats, FaithfulDecoder, generate_answers, token_table
from nerre.decoding.passes import RowCache
from nerre.errors import ConfigError
from nerre.example import Example, tokenize
from nerre.formulation import JsonRecords, TaggedText
from nerre.loaders import read_jsonl
from nerre.prompt import PromptBuilder, prompt_ids
from nerre.schema import Schema

TESTS = Path(__file__).parent
SCHEMA = yaml.safe_load((TESTS / "conf" / "tiny.yaml").read_text())["data"]["schema"]

TRICKY = [
    "the the the the",
    "p < 0.05 and x > 3 ; a<b>c </d> <",
    "tab\there , é ü 漢字 end !",
    "Nothing happened today .",
    "x | y #2 and x | y",
    "a\nRelations:\nb | works for | c",
    "",
]
TAG_LIKE = [  # inputs that hold markup: their tags are text
    "<person>Alice Walker</person> met <PER>Bob</PER> of <organization>IBM</organization> .",
    "Zoe\u0301 Salda\u0301n <address>Rue</address> \U0001F469\u200d\U0001F4BB .\nRelations:",
]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One torch thread: the CI machines are shared, and tiny models gain nothing from more."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def sentencepiece_tokenizer(texts=DEFAULT_TEXTS, vocab_size: int = 300) -> PreTrainedTokenizerFast:
    """A Gemma-like tokenizer: ``▁`` for spaces, BPE merges, ``<0xNN>`` byte-fallback pieces in the vocabulary."""
    trained = Tokenizer(models.BPE())
    trained.normalizer = normalizers.Replace(" ", "▁")
    trained.pre_tokenizer = pre_tokenizers.Split("▁", behavior="merged_with_next")
    trained.train_from_iterator(list(texts), trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS,
                                                                 show_progress=False))
    state = json.loads(trained.to_str())["model"]
    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS + [f"<0x{b:02X}>" for b in range(256)])}
    for tok, _ in sorted(state["vocab"].items(), key=lambda kv: kv[1]):
        vocab.setdefault(tok, len(vocab))
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in state["merges"]]
    backend = Tokenizer(models.BPE(vocab=vocab, merges=merges, byte_fallback=True))
    backend.normalizer, backend.pre_tokenizer = trained.normalizer, trained.pre_tokenizer
    backend.add_special_tokens(SPECIAL_TOKENS)
    backend.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()])
    return PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", eos_token="<eos>", bos_token="<bos>",
                                   unk_token="<unk>")


def setup(schema: dict, tokenizer_kind: str, seed: int = 0):
    formulation = TaggedText(Schema(**schema))
    prompts = PromptBuilder(formulation)
    texts = DEFAULT_TEXTS + [prompts.prompt("x")] + TRICKY
    tokenizer = tiny_tokenizer(texts) if tokenizer_kind == "byte_level" else sentencepiece_tokenizer(texts)
    model = tiny_model(tokenizer, seed=seed, initializer_range=0.2)
    return model, tokenizer, formulation, prompts


SCHEMAS = {"relations": SCHEMA, "ner": {"entities": SCHEMA["entities"]}}


def check_faithful(formulation: TaggedText, source: Example | str, answer: str) -> Example:
    """The grammar accepts the answer (a copy of the input with valid tags); the parser reads it without a
    defect, and reads exactly the entities the grammar tagged; tags sit on token boundaries."""
    text = source.text if isinstance(source, Example) else source
    tokens = source.tokens if isinstance(source, Example) else tokenize(text)
    grammar = formulation.grammar(source)
    state = grammar.advance_bytes(grammar.start(), answer.encode())
    assert state is not None and grammar.accepting(state), answer
    parsed = formulation.parse_answer(text, answer)
    assert not parsed.defects, (answer, parsed.defects)
    assert set(parsed.entities) == set(grammar.tagged(state)), answer
    starts, ends = {t.start for t in tokens}, {t.end for t in tokens}
    for e in parsed.entities:
        assert e.start in starts and e.end in ends and e.start < e.end
    for r in parsed.relations:
        assert r.head in parsed.entities and r.tail in parsed.entities
    return parsed.as_example(source)


# ----------------------------------------------------------------------------- the token level


@pytest.mark.parametrize("tokenizer_kind", ["byte_level", "sentencepiece"])
def test_valid_token_search_matches_a_scan_of_the_whole_vocabulary(tokenizer_kind):
    model, tokenizer, formulation, prompts = setup(SCHEMAS["relations"], tokenizer_kind)
    table = token_table(tokenizer)
    for text in ["p < 0.05 and x", "tab\there é 漢字", "John Smith works for Acme .", TAG_LIKE[0]]:
        runner = FaithfulDecoder(model, tokenizer, prompts, formulation, DecodeOptions(max_new_tokens=80, max_relations=2))
        runner.generate([text])
        grammar = formulation.grammar(text, table, max_relations=2)
        state = grammar.start()
        for token in runner.token_ids[0] + [None]:
            scan = [i for i, b in enumerate(table.token_bytes) if b and grammar.advance_bytes(state, b) is not None]
            if grammar.accepting(state):
                scan.append(table.eos_id)
            assert grammar.allowed(state) == sorted(scan)
            if token is not None:
                state = grammar.advance(state, token)


# ----------------------------------------------------------------------------- random models


@pytest.mark.parametrize("schema", ["relations", "ner"])
@pytest.mark.parametrize("tokenizer_kind", ["byte_level", "sentencepiece"])
def test_random_model_still_copies_faithfully_with_valid_tags(schema, tokenizer_kind):
    model, tokenizer, formulation, prompts = setup(SCHEMAS[schema], tokenizer_kind)
    stats = DecodeStats()
    options = DecodeOptions(max_new_tokens=160, max_relations=3)
    answers = generate_answers(model, tokenizer, prompts, formulation, TRICKY + TAG_LIKE, options, stats=stats)
    predictions = [check_faithful(formulation, text, answer) for text, answer in zip(TRICKY + TAG_LIKE, answers)]
    assert stats.decode_mismatches == 0
    assert sum(len(p.entities) for p in predictions) > 0  # the random model does tag things


def test_random_model_writes_relation_lines_that_name_tagged_entities():
    model, tokenizer, formulation, prompts = setup(SCHEMAS["relations"], "byte_level", seed=2)
    texts = ["John Smith works for Acme in New York .", "Marie Curie was born in Warsaw ."]
    answers = generate_answers(model, tokenizer, prompts, formulation, texts,
                           DecodeOptions(max_new_tokens=400, max_relations=4))
    predictions = [check_faithful(formulation, t, a) for t, a in zip(texts, answers)]
    lines = [line for a in answers for line in a.split("\nRelations:")[1].split("\n") if line]
    assert lines and sum(len(p.relations) for p in predictions) == len(lines)


def test_budget_running_out_still_gives_a_complete_answer():
    model, tokenizer, formulation, prompts = setup(SCHEMAS["relations"], "byte_level")
    text = "John Smith works for Acme in New York ."
    (answer,) = generate_answers(model, tokenizer, prompts, formulation, [text], DecodeOptions(max_new_tokens=40))
    check_faithful(formulation, text, answer)
    assert answer.endswith("\nRelations:") or "\nRelations:\n" in answer


def test_examples_tokens_decide_where_tags_may_go():
    model, tokenizer, formulation, prompts = setup(SCHEMAS["ner"], "byte_level")
    text = "AL-AIN , United Arab Emirates 1996-12-06"
    words = text.split(" ")
    example = Example.from_tokens(words)
    answers = generate_answers(model, tokenizer, prompts, formulation, [example] * 2 + [text],
                           DecodeOptions(max_new_tokens=120))
    check_faithful(formulation, example, answers[0])
    assert answers[0] == answers[1]


@pytest.mark.parametrize("tokenizer_kind", ["byte_level", "sentencepiece"])
@pytest.mark.parametrize("speculate", [4, 32])
def test_speculation_gives_the_same_tokens_as_step_by_step_decoding(tokenizer_kind, speculate):
    model, tokenizer, formulation, prompts = setup(SCHEMAS["relations"], tokenizer_kind, seed=1)
    texts = TRICKY[:5]
    runs = {}
    for k in (0, speculate):
        runner = FaithfulDecoder(model, tokenizer, prompts, formulation,
                                 DecodeOptions(speculate=k, max_new_tokens=120, max_relations=3))
        runs[k] = (runner.generate(texts), runner.token_ids, runner.stats)
    assert runs[0][1] == runs[speculate][1]
    assert runs[0][0] == runs[speculate][0]
    assert runs[speculate][2].forward_passes < runs[0][2].forward_passes
    assert runs[speculate][2].accepted_tokens > 0


@pytest.mark.parametrize("arch", ["gemma-sliding", "llama"])
def test_packed_forward_pass_matches_the_model(arch):
    """Packed passes rest on transformers internals (nerre/decoding/passes.py): an upgrade that breaks them
    fails here, naming the version, instead of silently decoding one input at a time. Llama builds its own
    causal mask (the attention function gets None, not the pack): SmolLM2's architecture."""
    model, tokenizer, formulation, prompts = setup(SCHEMAS["relations"], "byte_level")
    if arch == "llama":
        model = tiny_llama(tokenizer)
    passes = FaithfulDecoder(model, tokenizer, prompts, formulation).engine.passes
    version = f"transformers {transformers.__version__}"
    assert passes.packing_works(tokenizer), f"packed passes no longer fit {version}: {passes.packing_problem}"
    ids = tokenizer(" ".join(TRICKY), add_special_tokens=False)["input_ids"][:40]
    full = passes.body(input_ids=torch.tensor([ids]), use_cache=False).last_hidden_state[0]
    caches = [RowCache([], []), RowCache([], [])]  # sliding window 16 < 40 tokens: the window is applied too
    got = passes.run(caches, [ids[:25], ids[:6]], packed=True)
    assert torch.allclose(got[0], full[:25], atol=1e-4) and torch.allclose(got[1], full[:6], atol=1e-4), version
    more = passes.run(caches, [ids[25:40], ids[6:7]], packed=True)
    assert torch.allclose(more[0], full[25:40], atol=1e-4) and torch.allclose(more[1], full[6:7], atol=1e-4), version
    cache = passes.new_cache(passes.prefill(ids[:10]), 8, packed=False)  # a fork of a shared prefix
    assert passes.length(cache) == 8
    (rest,) = passes.run([cache], [ids[8:12]], packed=False)
    assert torch.allclose(rest, full[8:12], atol=1e-4), version
    passes.crop(cache, 2)
    assert passes.length(cache) == 10, version


@pytest.mark.parametrize("tokenizer_kind", ["byte_level", "sentencepiece"])
def test_decoding_several_inputs_together_changes_nothing(tokenizer_kind):
    model, tokenizer, formulation, prompts = setup(SCHEMAS["relations"], tokenizer_kind, seed=4)
    runs = []
    for batch_size, speculate in ((1, 0), (3, 8), (8, 32)):
        runner = FaithfulDecoder(model, tokenizer, prompts, formulation,
                                 DecodeOptions(batch_size=batch_size, speculate=speculate, max_new_tokens=100))
        runner.generate(TRICKY)
        runs.append(runner.token_ids)
    assert runs[0] == runs[1] == runs[2]


def test_shared_prompt_cache_changes_nothing():
    model, tokenizer, formulation, prompts = setup(SCHEMAS["relations"], "byte_level", seed=2)
    options = DecodeOptions(max_new_tokens=60)
    together = generate_answers(model, tokenizer, prompts, formulation, TRICKY[:4], options)
    alone = [generate_answers(model, tokenizer, prompts, formulation, [t], options)[0] for t in TRICKY[:4]]
    assert together == alone


def test_unconstrained_mode_counts_defects():
    model, tokenizer, formulation, prompts = setup(SCHEMAS["relations"], "byte_level")
    texts = TRICKY[:3]
    stats = DecodeStats()
    answers = generate_answers(model, tokenizer, prompts, formulation, texts,
                           DecodeOptions(constrained=False, batch_size=2, max_new_tokens=12), stats=stats)
    assert len(answers) == 3 and stats.forward_passes > 0
    predictions, defects = formulation.parse(texts, answers)
    assert [p.text for p in predictions] == texts
    assert all(found["text_drift"] + found["missing_relations"] >= 1 for found in defects)


def test_constrained_mode_needs_the_tagged_formulation():
    model, tokenizer, _, _ = setup(SCHEMAS["relations"], "byte_level")
    formulation = JsonRecords(Schema(**SCHEMA))
    with pytest.raises(ConfigError, match="grammar.*--constrained false"):
        generate_answers(model, tokenizer, PromptBuilder(formulation), formulation, ["a b"], DecodeOptions())
    answers = generate_answers(model, tokenizer, PromptBuilder(formulation), formulation, ["a b"],
                           DecodeOptions(constrained=False, max_new_tokens=4))
    assert len(answers) == 1


# ----------------------------------------------------------------------------- a trained model


def train_tiny(tokenizer, formulation, prompts, examples, steps: int = 200):
    """Fit a tiny model on the examples (answer-only loss, full fine-tuning): a few seconds."""
    model = tiny_model(tokenizer, initializer_range=0.5)
    rows = []
    for ex in examples:
        prompt = prompt_ids(tokenizer, prompts, ex.text)
        answer = tokenizer(formulation.encode(ex), add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        rows.append((prompt + answer, [-100] * len(prompt) + answer))
    width = max(len(ids) for ids, _ in rows)
    ids = torch.tensor([r[0] + [tokenizer.pad_token_id] * (width - len(r[0])) for r in rows])
    labels = torch.tensor([r[1] + [-100] * (width - len(r[1])) for r in rows])
    mask = (torch.arange(width)[None] < torch.tensor([len(r[0]) for r in rows])[:, None]).long()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(steps):
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if loss.item() < 1e-3:
            break
    return model.eval()


@pytest.fixture(scope="module")
def trained():
    examples = read_jsonl(TESTS / "data" / "tiny.jsonl")
    formulation = TaggedText(Schema(**SCHEMA))
    prompts = PromptBuilder(formulation)
    texts = [prompts.prompt(ex.text) + formulation.encode(ex) for ex in examples] * 4
    tokenizer = tiny_tokenizer(texts, vocab_size=2000)
    model = train_tiny(tokenizer, formulation, prompts, examples)
    return model, tokenizer, formulation, prompts, examples


@pytest.mark.parametrize("speculate", [0, 16])
def test_trained_model_reproduces_the_gold_targets(trained, speculate):
    model, tokenizer, formulation, prompts, examples = trained
    stats = DecodeStats()
    answers = generate_answers(model, tokenizer, prompts, formulation, examples, DecodeOptions(speculate=speculate),
                           stats=stats)
    assert answers == [formulation.encode(ex) for ex in examples]
    if speculate:
        assert stats.forward_passes <= len(examples) * 12  # vs about 40 tokens per answer step by step


def test_trained_model_unconstrained_matches_too(trained):
    model, tokenizer, formulation, prompts, examples = trained
    answers = generate_answers(model, tokenizer, prompts, formulation, examples,
                           DecodeOptions(constrained=False, batch_size=4))
    predictions, defects = formulation.parse(examples, answers)
    assert not any(defects)
    assert all(p.same_annotations(g) for p, g in zip(predictions, examples))


def test_the_extractor_of_nerre_predict_decodes_faithfully(trained):
    from nerre.adapter import AdapterSettings
    from nerre.predict import Extractor

    model, tokenizer, formulation, _, examples = trained
    settings = AdapterSettings(base_model="tiny", formulation="tagged", schema=SCHEMA, max_sequence_tokens=512)
    extractor = Extractor(model, tokenizer, settings, constrained=True, batch_size=3)
    predictions = extractor([ex.text for ex in examples])
    assert [p.outputs[0] for p in predictions[:3]] == [formulation.encode(ex) for ex in examples[:3]]
    assert all(p.example.same_annotations(g) and not p.defects for p, g in zip(predictions, examples))
