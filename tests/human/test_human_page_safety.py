"""The page escapes untrusted model output, sends a strict CSP, and needs token and CSRF."""

from __future__ import annotations

from _human_run import XSS_TEXT
from fastapi.testclient import TestClient

from prefloop.data.records import PromptItem, Response
from prefloop.judge.base import JudgeRequest
from prefloop.judge.human.app import create_app
from prefloop.judge.human.judge import HumanJudge
from prefloop.judge.human.queue import LabelQueue


def _client() -> tuple[TestClient, HumanJudge]:
    a = Response(model="m1", text=XSS_TEXT)
    b = Response(model="m2", text="plain answer")
    item = PromptItem(prompt_id="p1", prompt="say hi", responses=(a, b))
    judge = HumanJudge(
        LabelQueue(None, annotators_per_pair=1, seed=0),
        tokens={"alice": "tok-a"},
        leads=[],
        round_timeout_seconds=None,
        on_timeout="carry",
    )
    judge.queue.ask([JudgeRequest("pair-1", item, a, b)])
    return TestClient(create_app(judge)), judge


def test_model_html_is_escaped_under_a_strict_csp() -> None:
    client, _ = _client()
    page = client.get("/", headers={"Authorization": "Bearer tok-a"})
    assert page.status_code == 200
    assert "<script>alert(1)</script>" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert "<img" not in page.text and "&lt;img src=x onerror=" in page.text
    assert '<span class="nb">print</span>' in page.text  # the code block is highlighted
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "default-src 'none'" in csp and "unsafe" not in csp


def test_token_and_csrf_required() -> None:
    client, judge = _client()
    assert client.get("/").status_code == 401
    assert client.get("/", headers={"Authorization": "Bearer nope"}).status_code == 401
    login = client.post("/login", data={"token": "tok-a"}, follow_redirects=False)
    assert login.status_code == 303
    assert client.post("/label", data={"pair_id": "pair-1", "choice": "a"}).status_code == 403
    assert judge.queue.votes_of("pair-1") == []
    csrf = client.get("/api/next").json()["csrf"]
    ok = client.post("/label", data={"pair_id": "pair-1", "choice": "a", "csrf": csrf})
    assert ok.status_code == 200 and [v.choice for v in judge.queue.votes_of("pair-1")] == ["a"]
