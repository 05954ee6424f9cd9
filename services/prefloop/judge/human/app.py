"""The labelling page: FastAPI routes and Jinja2 templates over the human judge's queue.

- ``GET /login``, ``POST /login``: an annotator signs in with their token; the server sets a
  signed, HttpOnly, SameSite=Strict session cookie. Every other path (pages, API, unknown
  paths) needs that cookie or an ``Authorization: Bearer <token>`` header and answers 401
  without one, checked once in a middleware (a changed token ends the session: the cookie
  carries a digest of the token it was made with). Only the page's own CSS and JS
  (``/static/``, ``/static-gen/``) are served without it, so the browser can style the
  sign-in form.
- ``GET /``: the next pair for this annotator (prompt, the two responses side by side, Markdown
  rendered and code highlighted server-side, the sides in a seeded order per pair and person),
  buttons A / B / tie / skip (keys 1, 2, 3, s), an optional rationale, the round's progress and
  undo. ``POST /label`` and ``POST /undo`` need the form's CSRF token (an HMAC of the session),
  answer 403 without it, and redirect back to ``/`` (reload-safe: the label is on disk first).
- ``GET /queue``: the lead's view of every queued pair and its votes (``judge.human.leads``).
- ``GET /api/next``, ``POST /api/label``, ``GET /api/progress``: the same as JSON for scripts.

No inline script or style: the Content-Security-Policy allows scripts, styles and images from
this server only (``static/``), so model output that slipped through escaping still cannot run.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from itsdangerous import BadSignature, URLSafeSerializer
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.responses import Response

from prefloop.judge.human.judge import HumanJudge
from prefloop.judge.human.queue import CHOICES, LabelError, QueuedPair
from prefloop.judge.human.render import HIGHLIGHT_CLASS, highlight_css, render_markdown

HERE = Path(__file__).parent
SESSION_COOKIE = "prefloop_session"
PUBLIC_PREFIXES = ("/static/", "/static-gen/")
"""The page's own CSS and JS (no data in them): served without a token so that the browser
can load them on the sign-in form; every other path needs the token (``require_token``)."""
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


class _SecurityHeaders(BaseHTTPMiddleware):
    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        response = await call_next(request)
        response.headers.update(SECURITY_HEADERS)
        return response


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()[:32]


class _Auth:
    """Who is asking: the session cookie or bearer token checked against the configured tokens."""

    def __init__(self, tokens: dict[str, str], secret: str) -> None:
        self.by_digest = {_digest(t): name for name, t in tokens.items()}
        self.signer = URLSafeSerializer(secret, salt="prefloop-session")
        self.csrf_key = hashlib.sha256(f"csrf/{secret}".encode()).digest()

    def annotator(self, request: Request) -> str | None:
        header = request.headers.get("authorization", "")
        if header.lower().startswith("bearer "):
            return self.by_digest.get(_digest(header[7:].strip()))
        cookie = request.cookies.get(SESSION_COOKIE)
        if not cookie:
            return None
        try:
            data = self.signer.loads(cookie)
        except BadSignature:
            return None
        name = self.by_digest.get(str(data.get("token", "")))
        return name if name is not None and name == data.get("annotator") else None

    def session_cookie(self, token: str) -> str | None:
        name = self.by_digest.get(_digest(token))
        if name is None:
            return None
        return str(self.signer.dumps({"annotator": name, "token": _digest(token)}))

    def csrf(self, annotator: str) -> str:
        return hmac.new(self.csrf_key, annotator.encode(), hashlib.sha256).hexdigest()

    def csrf_ok(self, annotator: str, token: str) -> bool:
        return hmac.compare_digest(self.csrf(annotator), token)


def _pair_view(judge: HumanJudge, pair: QueuedPair, annotator: str) -> dict[str, Any]:
    """What the page shows of a pair: prompt and the two sides in this person's order."""
    req = pair.request
    a_left = judge.queue.a_on_left(req.pair_id, annotator)
    left, right = (req.a, req.b) if a_left else (req.b, req.a)
    return {
        "pair_id": req.pair_id,
        "prompt_html": render_markdown(req.item.prompt_text()),
        "left_html": render_markdown(left.text),
        "right_html": render_markdown(right.text),
        "left_text": left.text,
        "right_text": right.text,
        "left_choice": "a" if a_left else "b",
        "right_choice": "b" if a_left else "a",
    }


def _progress(judge: HumanJudge, annotator: str) -> dict[str, Any]:
    p: dict[str, Any] = dict(judge.queue.progress(annotator))
    p["budget"] = judge.max_annotations
    p["percent"] = round(100 * p["decided"] / p["asked"]) if p["asked"] else 0
    return p


def create_app(judge: HumanJudge, *, secret: str | None = None) -> FastAPI:
    """The labelling web app over ``judge``'s queue (see module doc)."""
    app = FastAPI(title="prefloop human judge", docs_url=None, redoc_url=None, openapi_url=None)
    templates = Jinja2Templates(directory=HERE / "templates")  # autoescape on for .html
    auth = _Auth(judge.tokens, secret or secrets.token_hex(32))

    @app.middleware("http")
    async def require_token(request: Request, call_next: RequestResponseEndpoint) -> Response:
        """Every request but the sign-in form and the static assets needs a known token.

        Why here and not per route: a route added later cannot forget the check, and an unknown
        path answers 401 too (nothing about the app is told to a stranger).
        """
        path = request.url.path
        if path == "/login" or path.startswith(PUBLIC_PREFIXES):
            return await call_next(request)
        who = auth.annotator(request)
        if who is None:
            if path.startswith("/api/"):
                return JSONResponse({"error": "token required"}, status_code=401)
            return login_page(request)
        request.state.annotator = who
        return await call_next(request)

    app.add_middleware(_SecurityHeaders)  # added last: outermost, so 401 answers get it too
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    def page(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        return templates.TemplateResponse(request, name, context, status_code=status)

    def login_page(request: Request, error: str | None = None) -> HTMLResponse:
        return page(request, "login.html", 401, error=error)

    @app.get("/static-gen/highlight.css")
    def css() -> PlainTextResponse:
        return PlainTextResponse(highlight_css(), media_type="text/css")

    @app.get("/login", response_class=HTMLResponse)
    def login_form(request: Request) -> HTMLResponse:
        return page(request, "login.html", error=None)

    @app.post("/login", response_model=None)
    def login(
        request: Request, token: Annotated[str, Form()] = ""
    ) -> HTMLResponse | RedirectResponse:
        cookie = auth.session_cookie(token.strip())
        if cookie is None:
            return login_page(request, "Unknown token.")
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(SESSION_COOKIE, cookie, httponly=True, samesite="strict")
        return response

    @app.post("/logout")
    def logout() -> RedirectResponse:  # needs a session, as every path but /login (above)
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE)
        return response

    @app.get("/", response_class=HTMLResponse)
    def label_page(request: Request) -> HTMLResponse:
        who: str = request.state.annotator
        pair = judge.queue.next_for(who)
        return page(
            request,
            "label.html",
            annotator=who,
            csrf=auth.csrf(who),
            pair=_pair_view(judge, pair, who) if pair else None,
            progress=_progress(judge, who),
            is_lead=who in judge.leads,
            hl=HIGHLIGHT_CLASS,
            message=request.query_params.get("m"),
        )

    @app.post("/label", response_model=None)
    def label(
        request: Request,
        pair_id: Annotated[str, Form()],
        choice: Annotated[str, Form()],
        csrf: Annotated[str, Form()] = "",
        rationale: Annotated[str, Form()] = "",
    ) -> Response:
        who: str = request.state.annotator
        if not auth.csrf_ok(who, csrf):
            return PlainTextResponse("CSRF token missing or wrong", status_code=403)
        try:
            judge.queue.give(who, pair_id, choice, rationale)
        except LabelError as e:
            return RedirectResponse(f"/?m={_quote(str(e))}", status_code=303)
        return RedirectResponse("/", status_code=303)

    @app.post("/undo", response_model=None)
    def undo(request: Request, csrf: Annotated[str, Form()] = "") -> Response:
        who: str = request.state.annotator
        if not auth.csrf_ok(who, csrf):
            return PlainTextResponse("CSRF token missing or wrong", status_code=403)
        undone = judge.queue.undo(who)
        message = "Undone." if undone else "Nothing to undo in this round."
        return RedirectResponse(f"/?m={_quote(message)}", status_code=303)

    @app.get("/queue", response_class=HTMLResponse)
    def queue_view(request: Request) -> HTMLResponse:
        who: str = request.state.annotator
        if who not in judge.leads:
            return page(request, "forbidden.html", 403, annotator=who)
        q = judge.queue
        with q.changed:
            rows = [
                {
                    "pair_id": pid,
                    "batch": p.batch,
                    "prompt": p.request.item.prompt_text()[:120],
                    "votes": sorted(p.votes.values(), key=lambda v: v.unix_time),
                    "state": "closed"
                    if p.closed
                    else (
                        "labelled" if q.decided(pid) else "dropped" if q.dropped(pid) else "open"
                    ),
                }
                for pid, p in sorted(q.pairs.items(), key=lambda kv: (-kv[1].batch, kv[0]))
            ]
        return page(
            request,
            "queue.html",
            annotator=who,
            rows=rows,
            progress=_progress(judge, who),
            metrics=judge.last_round_metrics,
            needed=q.annotators_per_pair,
        )

    @app.get("/api/next")
    def api_next(request: Request) -> JSONResponse:
        who: str = request.state.annotator
        pair = judge.queue.next_for(who)
        view = _pair_view(judge, pair, who) if pair else None
        if view is not None:
            view = {k: v for k, v in view.items() if not k.endswith("_html")}
        return JSONResponse({"pair": view, "csrf": auth.csrf(who)})

    @app.post("/api/label")
    def api_label(
        request: Request,
        pair_id: Annotated[str, Form()],
        choice: Annotated[str, Form()],
        csrf: Annotated[str, Form()] = "",
        rationale: Annotated[str, Form()] = "",
    ) -> JSONResponse:
        who: str = request.state.annotator
        if not auth.csrf_ok(who, csrf):
            return JSONResponse({"error": "CSRF token missing or wrong"}, status_code=403)
        if choice not in CHOICES:
            return JSONResponse({"error": f"choice must be one of {CHOICES}"}, status_code=422)
        try:
            vote = judge.queue.give(who, pair_id, choice, rationale)
        except LabelError as e:
            return JSONResponse({"error": str(e)}, status_code=409)
        return JSONResponse({"pair_id": vote.pair_id, "choice": vote.choice})

    @app.get("/api/progress")
    def api_progress(request: Request) -> JSONResponse:
        who: str = request.state.annotator
        return JSONResponse(_progress(judge, who))

    return app


def _quote(text: str) -> str:
    from urllib.parse import quote

    return quote(text, safe="")
