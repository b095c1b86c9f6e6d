"""The results tables of the README and the docs pages are the committed result files, rendered; the README
keeps the commands CI runs and the figures it quotes match the result files."""

from __future__ import annotations

import ast
import json
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import results_table  # noqa: E402

README_TEMPLATE = f"x\n{results_table.START}\nold\n{results_table.END}\ny\n"
ABLATIONS_PAGE = "docs/open-questions.md"
ABLATIONS_TEMPLATE = f"x\n{results_table.ABLATIONS_START}\nold\n{results_table.ABLATIONS_END}\nz\n"


@pytest.mark.parametrize("page", results_table.PAGES)
def test_each_pages_results_tables_match_the_result_files(page):
    text = (ROOT / page).read_text()
    assert results_table.render(text, page=page) == text, "run: python benchmarks/results_table.py"


def test_results_table_changes_with_the_files(tmp_path):
    source = next(results_table.RESULTS.glob("*/result.json"))
    (tmp_path / "run-a").mkdir()
    result = json.loads(source.read_text())
    result["entities"]["f1"] = 0.12345
    (tmp_path / "run-a" / "result.json").write_text(json.dumps(result))
    rendered = results_table.render(README_TEMPLATE, tmp_path)
    assert "/ 12.35 |" in rendered and "\nold\n" not in rendered and rendered.endswith(f"{results_table.END}\ny\n")
    assert "](benchmarks/results/run-a/result.md)" in rendered
    in_docs = results_table.render(README_TEMPLATE, tmp_path, page="docs/benchmarks.md")
    assert "](results/run-a/result.md)" in in_docs  # docs/results links to benchmarks/results
    assert "No ablation results yet" in results_table.render(ABLATIONS_TEMPLATE, tmp_path, page=ABLATIONS_PAGE)


def test_ablations_table_has_a_row_per_variant_and_for_unconstrained_decoding(tmp_path):
    result = json.loads(next(results_table.RESULTS.glob("*/result.json")).read_text())
    for name, f1, defects in [("baseline", 0.8, {}), ("json", 0.7, {"wrong_offsets": 3, "invalid_json": 2})]:
        (tmp_path / "ablations" / name).mkdir(parents=True)
        variant = {**result, "entities": {**result["entities"], "f1": f1}, "defects": defects}
        if name == "baseline":
            variant["unconstrained"] = {**{k: result[k] for k in ("entities", "relations", "recall_seen_unseen")},
                                        "defects": {"hallucinated_entity": 4}, "predict_sentences_per_s": 0.3}
        (tmp_path / "ablations" / name / "result.json").write_text(json.dumps(variant))
    rendered = results_table.render(ABLATIONS_TEMPLATE, tmp_path, page=ABLATIONS_PAGE)
    rows = [line for line in rendered.splitlines() if line.startswith("| ") and "`" in line]
    assert [row.split(" | ")[0] for row in rows] == ["| baseline", "| baseline, unconstrained", "| json"]
    assert "/ 80.00 |" in rows[0] and "`--data.formulation json`" in rows[2]
    assert rows[0].split(" | ")[1] == result["model"]
    assert rows[1].split(" | ")[-4:-2] == ["4", "4"]  # defects, of which hallucinated or misplaced
    assert rows[2].split(" | ")[-4:-2] == ["5", "3"]
    assert result["command"] in rendered and "](results/ablations/comparison.png)" in rendered


def test_readme_without_markers_is_named_in_the_error():
    with pytest.raises(ValueError, match="README.md has no <!-- results:start --> ... <!-- results:end --> markers"):
        results_table.render("# a README without a results section\n")


def test_a_page_without_ablation_markers_is_named_in_the_error():
    with pytest.raises(ValueError, match="docs/open-questions.md has no <!-- ablations:start --> ... "
                                         "<!-- ablations:end --> markers"):
        results_table.render(README_TEMPLATE, page=ABLATIONS_PAGE)


def test_a_run_without_a_logged_training_speed_shows_n_a_not_zero(tmp_path):
    import run

    result = json.loads((ROOT / "benchmarks" / "results" / "conll04-cpu-2ep" / "result.json").read_text())
    result["train_tokens_per_s"] = None  # a run shorter than log_every_n_steps logs no speed
    (tmp_path / "short").mkdir()
    (tmp_path / "short" / "result.json").write_text(json.dumps(result))
    assert "| training tokens/s | n/a |" in run.markdown(result)
    assert "| 0 | n/a | 1.42 |" in results_table.table(tmp_path)


def write_ablation(results: Path, name: str, **changes) -> dict:
    result = {**json.loads((results_table.RESULTS / "ablations" / "baseline" / "result.json").read_text()), **changes}
    result.pop("unconstrained", None)
    (results / name).mkdir(parents=True)
    (results / name / "result.json").write_text(json.dumps(result))
    return result


def test_scale_rows_show_model_steps_speeds_f1_and_unseen_recall(tmp_path):
    import ablations

    results = tmp_path / "ablations"
    write_ablation(results, "baseline")
    recall = {"seen": {"recall": 0.5, "gold": 2, "found": 1}, "unseen": {"recall": 0.25, "gold": 4, "found": 1}}
    write_ablation(results, "smollm2-steps", model="smollm2-135m", train_tokens_per_s=654.3,
                   predict_sentences_per_s=4.56, entities={"precision": 0.7, "recall": 0.6, "f1": 0.65},
                   recall_seen_unseen=recall)
    write_ablation(results, "smollm2-time", model="smollm2-135m", steps=250,
                   overrides=["--data.max_train_examples", "960", "--trainer.max_time", "00:00:13:42",
                              "--trainer.max_steps", "275", "--trainer.max_epochs", "-1"])
    rows = {line.split(" | ")[0][2:]: line.split(" | ") for line in ablations.markdown(ablations.comparison(results))
            .splitlines()[2:]}
    assert list(rows) == ["baseline", "smollm2-steps", "smollm2-time"]
    variant, model, override, steps, entities, novelty, *_, tokens, sentences = rows["smollm2-steps"]
    assert (model, override, steps, entities, novelty) == ("smollm2-135m", "`--model.init_args.model smollm2-135m`",
                                                           "120", "70.00 / 60.00 / 65.00", "50.00 / 25.00")
    assert (tokens, sentences) == ("654", "4.56 |")
    assert rows["smollm2-time"][1:4] == ["smollm2-135m", "`--model.init_args.model smollm2-135m --trainer.max_time "
                                         "00:00:13:42`", "250"]
    assert rows["baseline"][1:4] == ["gemma-3-270m", "`none`", "120"]


def test_time_matched_run_gets_the_baseline_fit_time_and_a_projected_step_count(tmp_path):
    import ablations

    results = tmp_path / "ablations"
    write_ablation(results, "baseline", fit_seconds=822.3, steps=120)
    with pytest.raises(SystemExit, match="smollm2-steps/result.json is missing: .*run the 'smollm2-steps' variant "
                                         "first \\(--only smollm2-steps\\)"):
        ablations.wall_clock_budget(results, "baseline", "smollm2-steps")
    write_ablation(results, "smollm2-steps", fit_seconds=411.0, steps=120)  # twice the baseline's pace
    assert ablations.wall_clock_budget(results, "baseline", "smollm2-steps") == [
        "--trainer.max_time", "00:00:13:42", "--trainer.max_steps", "265", "--trainer.max_epochs", "-1"]
    write_ablation(results / "slow", "smollm2-steps", fit_seconds=3700.0, steps=120)
    write_ablation(results / "slow", "baseline", fit_seconds=3725.0, steps=120)
    assert ablations.wall_clock_budget(results / "slow", "baseline", "smollm2-steps")[:4] == [
        "--trainer.max_time", "00:01:02:05", "--trainer.max_steps", "133"]


def test_ablations_run_only_the_variants_asked_for_with_their_budget(tmp_path, monkeypatch):
    import ablations

    results = tmp_path / "benchmarks" / "results"
    write_ablation(results / "ablations", "baseline", fit_seconds=822.3, steps=120)
    write_ablation(results / "ablations", "smollm2-steps", fit_seconds=411.0, steps=120)
    calls = []
    monkeypatch.setattr(ablations, "RESULTS", results)
    monkeypatch.setattr(ablations, "run_benchmark", lambda *args, **kwargs: calls.append(args))
    monkeypatch.setattr(ablations, "write_comparison", lambda results: None)
    monkeypatch.setattr(sys, "argv", ["ablations.py", "--config", "c.yaml", "--max-steps", "120", "--train-examples",
                                      "960", "--only", "smollm2-time", "bio", "--trainer.val_check_interval", "60"])
    ablations.main()
    (bio_config, bio, bio_steps, _, bio_args, _), (_, name, steps, _, args, _) = calls
    assert (bio, bio_steps) == ("bio", 120)
    assert bio_args == ["--data.loss_on", "answer", "--data.max_train_examples", "960", "--data.formulation", "bio",
                        "--trainer.val_check_interval", "60"]
    assert (name, steps) == ("smollm2-time", None)
    assert args == ["--data.loss_on", "answer", "--data.max_train_examples", "960", "--trainer.max_time", "00:00:13:42",
                    "--trainer.max_steps",
                    "265", "--trainer.max_epochs", "-1", "--model.init_args.model", "smollm2-135m",
                    "--trainer.val_check_interval", "60"]


def test_the_readme_is_a_front_page_with_the_commands_ci_runs():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 250
    ci = (ROOT / ".ci" / "run").read_text()
    installs = [re.sub(r"\s+#.*", "", line.strip()).replace("python -m ", "").replace("--quiet ", "")
                for line in ci.splitlines() if "pip install" in line and "--upgrade pip" not in line]
    assert installs == ["pip install torch==2.13.0", 'pip install -e ".[dev]"']
    for command in installs:
        assert f"\n{command}\n" in readme, f"README.md lost CI's install command {command!r}"
    (test,) = [line.strip() for line in ci.splitlines() if "pytest" in line]
    (shown,) = re.findall(r"^python -m pytest .*$", readme, flags=re.M)
    assert test.startswith(shown), f"CI runs {test!r}, the README says {shown!r}"


def card_run(adapter: str) -> dict:
    """The result of the benchmark run a shipped adapter's card names (its ``--name``)."""
    card = (ROOT / "nerre" / "adapters" / adapter / "README.md").read_text()
    (name,) = re.findall(r"command: `python benchmarks/run\.py .*--name (\S+)", card)
    return json.loads((results_table.RESULTS / name / "result.json").read_text())


@pytest.mark.parametrize("page", ["README.md", "docs/prediction.md"])
def test_the_shipped_adapters_scores_quoted_are_their_runs_scores(page):
    text = (ROOT / page).read_text()
    conll2003, conll04 = card_run("conll2003"), card_run("conll04")
    pct = results_table.pct
    e = conll2003["entities"]
    assert (f"entity F1 {pct(e['f1'])} on the CoNLL-2003 test set (P {pct(e['precision'])}, R {pct(e['recall'])}), "
            f"{conll2003['fit_seconds'] / 60:.0f} min of training") in text
    assert (f"strict relation F1 {pct(conll04['relations']['strict']['f1'])} and entity F1 "
            f"{pct(conll04['entities']['f1'])} on the CoNLL04 test set, {conll04['fit_seconds'] / 60:.0f} min of "
            "training") in text
    ade = card_run("ade")
    assert (f"strict relation F1 {pct(ade['relations']['strict']['f1'])} and entity F1 {pct(ade['entities']['f1'])} "
            f"on the test split of ADE's fold 0 ({ade['test_examples']} sentences; trained on the other nine folds), "
            f"{ade['fit_seconds'] / 60:.0f} min of training") in text


def test_the_benchmark_scripts_import_each_other_without_a_circle():
    scripts = {p.stem: p for p in (ROOT / "benchmarks").glob("*.py")}
    imports = {}
    for name, path in scripts.items():
        tree = ast.parse(path.read_text())
        found = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        found |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        imports[name] = found & scripts.keys()

    def reaches(start: str, goal: str, seen: frozenset = frozenset()) -> bool:
        return any(m == goal or (m not in seen and reaches(m, goal, seen | {m})) for m in imports[start])

    assert not [name for name in scripts if reaches(name, name)]
    assert {"run", "ablations", "results_table"} <= {name for name, found in imports.items() if "common" in found}


@pytest.mark.parametrize("data, expected", [
    ({"train": "t.json", "val": "d.json", "train_dev": True}, "train+dev, last step; bf16-mixed"),
    ({"train": "t.json", "val": "d.json"}, "train, best on dev; bf16-mixed"),
    ({"train": "t.json"}, "train, last step; bf16-mixed"),
    ({"train": "ade/ade_split_3_train.json"}, "train, last step; bf16-mixed; fold 3 of a cross-validation"),
])
def test_the_protocol_column_says_what_the_run_trained_on_and_in_which_precision(tmp_path, data, expected):
    import yaml

    source = next(results_table.RESULTS.glob("*/result.json"))
    (tmp_path / "run-a" / "run" / "lightning_logs" / "version_0").mkdir(parents=True)
    (tmp_path / "run-a" / "result.json").write_text(source.read_text())
    config = {"data": data, "trainer": {"precision": "bf16-mixed"}}
    (tmp_path / "run-a" / "run" / "lightning_logs" / "version_0" / "config.yaml").write_text(yaml.safe_dump(config))
    row = next(line for line in results_table.render(README_TEMPLATE, tmp_path).splitlines() if "run-a" in line)
    assert row.split(" | ")[1] == expected
    assert results_table.protocol(tmp_path / "missing") == ""
