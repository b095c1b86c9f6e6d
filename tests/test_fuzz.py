"""Every reader, fed random bytes, truncated real files and mixed encodings, either reads the data or raises
nerre's error type: nothing else may escape (a traceback is a bug)."""

from __future__ import annotations

import codecs
import random
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import TINY_DATA

from nerre.errors import DataError, NerreError
from nerre.example import Example
from nerre.loaders import FORMATS, load_examples, write_examples
from nerre.loaders.jsonl import read_predictions
from nerre.predict import read_inputs
from nerre.schema import Schema

ROOT = Path(__file__).resolve().parents[1]
FORMATS_DATA = ROOT / "tests" / "data" / "formats"
SUFFIX = {"conll": ".txt", "spert": ".json", "jsonl": ".jsonl", "json": ".json", "doccano": ".jsonl",
          "labelstudio": ".json", "brat": ".ann", "spacy": ".spacy"}
CASES = 60  # per reader and kind of damage


def seeds(data_dir: Path, tmp_path: Path) -> dict[str, bytes]:
    """Real files (their first 12 kB) that the mutations start from, one per file format."""
    def head(path: Path) -> bytes:
        return path.read_bytes()[:12_000]

    docbin = write_examples(load_examples(data_dir / "conll04" / "conll04_test.json")[:20], tmp_path / "seed.spacy",
                            "spacy")
    assert not docbin  # the seed DocBin holds everything
    return {
        "json": head(FORMATS_DATA / "presidio.json"),
        "doccano": head(FORMATS_DATA / "doccano.jsonl"),
        "labelstudio": head(FORMATS_DATA / "labelstudio.json"),
        "brat": head(FORMATS_DATA / "brat" / "clinic.ann"),
        "spacy": (tmp_path / "seed.spacy").read_bytes(),
        "conll": head(data_dir / "conll2003" / "test.txt"),
        "spert": head(data_dir / "conll04" / "conll04_test.json"),
        "jsonl": head(ROOT / "examples" / "pii" / "train.jsonl") + (TINY_DATA / "tiny.jsonl").read_bytes(),
        "types": (data_dir / "conll04" / "conll04_types.json").read_bytes(),
    }


def random_bytes(rng: random.Random, seed: bytes) -> bytes:
    alphabet = [bytes([b]) for b in range(256)] + [b"\n", b"{", b"}", b"[", b"]", b'"', b":", b",", b" ", b"\t",
                                                    b"B-PER", b"I-", b"O", b"-DOCSTART-", b"\r\n"]
    return b"".join(rng.choice(alphabet) for _ in range(rng.randint(0, 400)))


def truncated(rng: random.Random, seed: bytes) -> bytes:
    return seed[: rng.randint(0, len(seed))]


def mutated(rng: random.Random, seed: bytes) -> bytes:
    data = bytearray(seed[: rng.randint(len(seed) // 4, len(seed))])
    for _ in range(rng.randint(1, 12)):
        at = rng.randrange(len(data) + 1)
        roll = rng.random()
        if roll < 0.4 and data:
            data[min(at, len(data) - 1)] = rng.randrange(256)
        elif roll < 0.7:
            data[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 4)))
        else:
            del data[at : at + rng.randint(1, 40)]
    return bytes(data)


def mixed_encodings(rng: random.Random, seed: bytes) -> bytes:
    text = seed.decode("utf-8", errors="replace")
    cut = rng.randrange(len(text) + 1)
    encoding = rng.choice(["latin-1", "cp1252", "utf-16", "utf-16-le", "utf-32", "utf-8-sig", "utf-7"])
    tail = text[cut:].replace("\ufffd", "?")
    encoded = tail.encode(encoding, errors="replace")
    marks = [b"", codecs.BOM_UTF8, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE, b"\x00", "é".encode("latin-1")]
    return rng.choice(marks) + text[:cut].encode("utf-8", errors="replace") + rng.choice(marks) + encoded


DAMAGE: dict[str, Callable[[random.Random, bytes], bytes]] = {
    "random_bytes": random_bytes, "truncated": truncated, "mutated": mutated, "mixed_encodings": mixed_encodings,
}


def readers(data_dir: Path) -> dict[str, tuple[str, Callable[[Path], object]]]:
    """Each reader a user's file can reach, with the seed it is fuzzed from."""
    found = {fmt: (fmt, lambda path, fmt=fmt: load_examples(path, fmt)) for fmt in FORMATS if fmt in SUFFIX}
    found["detected"] = ("conll", lambda path: load_examples(path))
    found["predictions"] = ("jsonl", read_predictions)
    found["predict_input"] = ("conll", read_inputs)
    found["types_file"] = ("types", Schema.from_types_file)
    return found


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_readers_raise_only_nerre_errors(data_dir, tmp_path, damage):
    rng = random.Random(f"nerre-{damage}")
    starts = seeds(data_dir, tmp_path)
    outcomes = {"read": 0, "refused": 0}
    for name, (seed_name, reader) in readers(data_dir).items():
        for case in range(CASES):
            data = DAMAGE[damage](rng, starts[seed_name])
            path = tmp_path / f"{name}-{case}{SUFFIX.get(seed_name, '.json')}"
            path.write_bytes(data)
            if seed_name == "brat":  # the .ann is damaged, its .txt is the real one
                shutil.copy(FORMATS_DATA / "brat" / "clinic.txt", path.with_suffix(".txt"))
            try:
                result = reader(path)
            except NerreError as err:
                assert str(err) and "\n" not in str(err).strip(), f"{name}: a multi-line message: {err!r}"
                outcomes["refused"] += 1
            except Exception as err:  # anything else is a bug: show the input that caused it
                raise AssertionError(f"{name} raised {type(err).__name__}: {err} on {data[:300]!r}") from err
            else:
                assert isinstance(result, Schema) or all(isinstance(x, Example) for x in result)
                outcomes["read"] += 1
            path.unlink()
            path.with_suffix(".txt").unlink(missing_ok=True)
    assert outcomes["refused"] > 0  # the damage was seen


def test_a_damaged_saved_dataset_raises_a_data_error(tmp_path):
    import datasets

    folder = tmp_path / "ds"
    datasets.Dataset.from_dict({"tokens": [["John", "runs"]], "ner_tags": [["B-PER", "O"]]}).save_to_disk(folder)
    rng = random.Random(3)
    files = sorted(p.name for p in folder.iterdir())
    for case in range(3 * len(files)):
        broken = tmp_path / f"broken{case}"
        shutil.copytree(folder, broken)
        victim = broken / files[case % len(files)]
        kind = case // len(files)
        if kind == 0:
            victim.unlink()
        elif kind == 1:
            victim.write_bytes(victim.read_bytes()[: rng.randrange(max(1, victim.stat().st_size))])
        else:
            victim.write_bytes(bytes(rng.randrange(256) for _ in range(64)))
        try:
            examples = load_examples(broken, "hf")
        except DataError as err:
            assert str(err).startswith(f"{broken}: cannot read this folder as a dataset saved with save_to_disk")
        except Exception as err:
            raise AssertionError(f"{type(err).__name__} escaped for {victim.name} (damage {kind}): {err}") from err
        else:  # a quiet read of damaged data is the failure this test is for
            raise AssertionError(f"damaged {victim.name} (damage {kind}) was read without an error: {examples}")
