"""`nerre serve`: the real LitServe server on a free local port, real HTTP requests, the server always stopped."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from conftest import scores_of, unscored

from nerre.predict import Extractor
from nerre.serve import check_body

TEXTS = ["John Smith works for Acme .", "Mary Jones lives in Paris .", "Acme hired Bob Lee in Rome .",
         "Nothing happened today .", "Bob Lee works for Acme in Paris ."]
MAX_BYTES = 4000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tiny_adapter):
    port = free_port()
    args = [sys.executable, "-m", "nerre.cli", "serve", "--adapter", str(tiny_adapter), "--port", str(port),
            "--accelerator", "cpu", "--max_bytes", str(MAX_BYTES), "--max_texts", "8", "--batch_timeout", "0.05"]
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            if process.poll() is not None:
                raise AssertionError(f"the server stopped: {process.stdout.read().decode()[-3000:]}")
            try:
                if httpx.get(f"{url}/health", timeout=2).text.strip('"') == "ok":
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the server did not start within 180 s"
            time.sleep(0.5)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)  # the server and its worker processes, started here
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)


def test_concurrent_requests_get_what_the_extractor_predicts(server, tiny_adapter):
    extractor = Extractor.load(tiny_adapter)
    expected = {text: extractor(text).to_dict() for text in TEXTS}
    bodies = [{"text": TEXTS[i % len(TEXTS)]} for i in range(12)] + [{"texts": TEXTS[:3]}, {"texts": []}]
    with httpx.Client(timeout=60) as client, ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda body: client.post(f"{server}/predict", json=body), bodies))
    assert [a.status_code for a in answers] == [200] * len(bodies)
    for body, answer in zip(bodies[:12], answers):  # batched with other requests: scores up to float noise
        assert unscored(answer.json()) == unscored(expected[body["text"]])
        assert scores_of(answer.json()) == pytest.approx(scores_of(expected[body["text"]]), abs=1e-3)
    assert unscored(answers[12].json()) == {"predictions": [unscored(expected[t]) for t in TEXTS[:3]]}
    assert answers[13].json() == {"predictions": []}
    assert expected[TEXTS[0]]["entities"][0]["text"] == "John Smith"


def test_bad_requests_get_a_reason_and_the_server_stays_up(server):
    predict = f"{server}/predict"
    with httpx.Client(timeout=60) as client:
        bad = [
            (client.post(predict, content=b"{not json", headers={"content-type": "application/json"}), 400, "not JSON"),
            (client.post(predict, json={"txt": "x"}), 422, '"text" string or a "texts" list'),
            (client.post(predict, json={"texts": ["a", 1]}), 422, "list of strings"),
            (client.post(predict, json={"text": "x" * MAX_BYTES}), 413, f"over {MAX_BYTES} bytes"),
            (client.post(predict, json={"texts": ["a"] * 9}), 413, "at most 8"),
            (client.post(predict, data={"text": "x"}), 400, "not JSON"),  # a form
            (client.post(predict, files={"text": b"x"}), 415, "send JSON"),
        ]
        for answer, status, reason in bad:
            assert answer.status_code == status and reason in answer.json()["error"], answer.text
        good = client.post(predict, content=b'{"text": "%s"}' % TEXTS[1].encode(),  # as curl -d sends it
                           headers={"content-type": "application/x-www-form-urlencoded"})
    assert good.status_code == 200 and [e["label"] for e in good.json()["entities"]] == ["PER", "LOC"]


def test_request_checks():
    assert check_body(b'{"text": "a"}').texts == ["a"]
    assert check_body(b'{"text": "a", "texts": ["b"]}')[0] == 422
    assert check_body(b"\xff")[0] == 400
    assert check_body(b"[1]")[0] == 422
