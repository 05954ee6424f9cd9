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


def test_static_assets_need_no_token_but_every_page_and_api_call_does() -> None:
    client, _ = _client()
    login = client.get("/login")
    assert login.status_code == 200
    # the login page loads its stylesheet, highlight styles and script without a session
    for path, kind in (
        ("/static/style.css", "text/css"),
        ("/static-gen/highlight.css", "text/css"),
        ("/static/app.js", "javascript"),
    ):
        assert f'"{path}"' in login.text
        r = client.get(path)
        assert r.status_code == 200 and kind in r.headers["content-type"], path
        assert "default-src 'none'" in r.headers["content-security-policy"]
    assert client.get("/static/../app.py").status_code in (401, 404)  # no escape from static/

    # every other route, whatever its method, answers 401 without a token or with a wrong one
    app = client.app
    routes = [
        (method, route.path)
        for route in app.routes  # type: ignore[attr-defined]
        for method in getattr(route, "methods", None) or ()
        if not route.path.startswith(("/static", "/login"))
    ]
    assert {"/", "/label", "/undo", "/queue", "/logout", "/api/next", "/api/label"} <= {
        p for _, p in routes
    }
    for method, path in [*routes, ("GET", "/no-such-page"), ("GET", "/api/no-such-call")]:
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            r = client.request(method, path, headers=headers, follow_redirects=False)
            assert r.status_code == 401, (method, path, r.status_code)
            if path.startswith("/api/"):
                assert r.json() == {"error": "token required"}
    assert client.get("/api/progress", headers={"Authorization": "Bearer tok-a"}).status_code == 200
