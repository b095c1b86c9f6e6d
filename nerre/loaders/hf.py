"""Hugging Face token-classification datasets (``tokens`` + ``ner_tags``), from the hub or ``save_to_disk``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nerre.errors import DataError
from nerre.example import Example
from nerre.loaders.tags import TagError, announce_scheme, detect_scheme, normalize_scheme, spans_from_tags


def read_hf(
    name_or_path: str | Path,
    split: str | None = None,
    tokens_column: str = "tokens",
    tags_column: str = "ner_tags",
    scheme: str = "auto",
) -> list[Example]:
    """Read a token-classification dataset.

    Args:
        name_or_path: a folder written by ``save_to_disk`` (read with ``datasets.load_from_disk``), or a hub
            name (``datasets.load_dataset``).
        split: which split of a DatasetDict; required when the dataset has several splits.
        tokens_column: column with the list of words.
        tags_column: column with the tags: ClassLabel integers (mapped through the feature's names) or strings.
        scheme: ``auto``, ``iob1``, ``iob2`` or ``bioes``/``bilou``.

    Returns:
        One :class:`Example` per row; id from an ``id`` column when there is one, else ``"{name}:{row}"``.

    Raises:
        DataError: naming the dataset and row for a missing split or column, or a bad tag.
    """
    if scheme != "auto":
        scheme = normalize_scheme(scheme)
    ds = _load(name_or_path, split)
    source = str(name_or_path) + (f"[{split}]" if split else "")
    for column in (tokens_column, tags_column):
        if column not in ds.column_names:
            raise DataError(
                source, f"no column {column!r}; the columns are {', '.join(ds.column_names)} "
                "(set tokens_column / tags_column)"
            )
    if len(ds) == 0:
        raise DataError(source, "the dataset has no rows")
    words_rows = list(ds[tokens_column])
    tag_rows = _tag_strings(source, ds.features[tags_column], list(ds[tags_column]))
    ids = list(ds["id"]) if "id" in ds.column_names else None
    if scheme == "auto":
        scheme = detect_scheme(tag_rows)
        announce_scheme(scheme, tag_rows, lambda row, k: f"{source}: record {row}, token {k}")
    name = Path(name_or_path).name or str(name_or_path)
    examples = []
    for row, (words, tags) in enumerate(zip(words_rows, tag_rows)):
        if len(words) != len(tags):
            raise DataError(source, f"{len(words)} tokens but {len(tags)} tags; each token needs one tag", record=row)
        try:
            spans = spans_from_tags(tags, scheme)
        except TagError as e:
            raise DataError(source, f"{e} (scheme {scheme})", record=row) from e
        rid = str(ids[row]) if ids is not None else f"{name}:{row}"
        examples.append(Example.from_tokens([str(w) for w in words], spans, id=rid))
    return examples


def _load(name_or_path: str | Path, split: str | None) -> Any:
    import datasets

    if Path(name_or_path).is_dir():
        try:
            ds = datasets.load_from_disk(str(name_or_path))
        except Exception as e:  # datasets and pyarrow raise many kinds for a damaged folder
            message = (f"cannot read this folder as a dataset saved with save_to_disk ({type(e).__name__}: "
                       f"{_first_line(e)}); save it again, or pass the path of a corpus file")
            raise DataError(name_or_path, message) from e
    else:
        try:
            ds = datasets.load_dataset(str(name_or_path), split=split)
        except Exception as e:  # hub/network/format errors: report them against the dataset name
            message = f"could not load the dataset ({type(e).__name__}: {_first_line(e)}); check the name or path"
            raise DataError(name_or_path, message) from e
    if isinstance(ds, (datasets.DatasetDict, datasets.IterableDatasetDict)):
        splits = ", ".join(ds)
        if split is None:
            raise DataError(name_or_path, f"the dataset has splits {splits}; pass split= one of them")
        if split not in ds:
            raise DataError(name_or_path, f"no split {split!r}; the splits are {splits}")
        return ds[split]
    if split is not None and ds.split is not None and str(ds.split) != split:
        raise DataError(name_or_path, f"this dataset is the {ds.split!s} split, not {split!r}; leave out split")
    return ds


def _tag_strings(source: str, feature: Any, rows: list[list[Any]]) -> list[list[str]]:
    """The tags as strings: ClassLabel integers are mapped through the label names."""
    import datasets

    inner = getattr(feature, "feature", None)
    if not isinstance(inner, datasets.ClassLabel):
        for row, tags in enumerate(rows):
            bad = next((t for t in tags if not isinstance(t, str)), None)
            if bad is not None:
                raise DataError(
                    source, f"tag {bad!r} is not a string and the column has no ClassLabel names to map it", record=row
                )
        return rows
    names = inner.names
    out = []
    for row, tags in enumerate(rows):
        bad = next((t for t in tags if not 0 <= t < len(names)), None)
        if bad is not None:
            raise DataError(source, f"tag id {bad} is outside the {len(names)} ClassLabel names", record=row)
        out.append([names[t] for t in tags])
    return out


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [""])[0][:200]
