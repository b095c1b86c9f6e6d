"""The LitServe API of ``nerre serve`` (:mod:`nerre.serve`); its own module because it needs LitServe, an
optional dependency, at import."""

from __future__ import annotations

import json
from typing import Any

import litserve as ls
from fastapi import HTTPException

from nerre.serve import TextsRequest, check_body


class ExtractorAPI(ls.LitAPI):
    """An :class:`~nerre.predict.Extractor` behind LitServe: each worker process loads the adapter in
    ``setup``; requests that LitServe gathers are predicted together.

    Args:
        settings: the keyword arguments of :meth:`Extractor.load`.
        max_texts: the most texts in one request.
        kwargs: ``litserve.LitAPI``'s (``max_batch_size``, ``batch_timeout``, ``api_path``).
    """

    def __init__(self, settings: dict[str, Any], max_texts: int, **kwargs: Any):
        super().__init__(**kwargs)
        self.settings, self.max_texts = settings, max_texts
        self.extractor: Any = None

    def setup(self, device: str) -> None:
        from nerre.predict import Extractor

        self.extractor = Extractor.load(**self.settings)
        self.extractor.model.to(device)

    def decode_request(self, request) -> TextsRequest:  # unannotated: LitServe then passes the parsed JSON body
        checked = check_body(json.dumps(request).encode(), self.max_texts)  # (CheckRequests checked it already)
        if isinstance(checked, tuple):
            raise HTTPException(status_code=checked[0], detail=checked[1])
        return checked

    def batch(self, inputs: list[TextsRequest]) -> list[TextsRequest]:
        return inputs

    def predict(self, requests: TextsRequest | list[TextsRequest]) -> Any:
        many = isinstance(requests, list)
        requests = requests if many else [requests]
        texts = [text for request in requests for text in request.texts]
        records = [p.to_dict() for p in self.extractor(texts)] if texts else []
        answers, at = [], 0
        for request in requests:
            answers.append((request, records[at : at + len(request.texts)]))
            at += len(request.texts)
        return answers if many else answers[0]

    def unbatch(self, output: list[Any]) -> list[Any]:
        return output

    def encode_response(self, output: tuple[TextsRequest, list[dict[str, Any]]]) -> dict[str, Any]:
        request, records = output
        return records[0] if request.single else {"predictions": records}
