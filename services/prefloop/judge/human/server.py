"""``prefloop judge-ui RUN.yaml --port P``: the embedded run with its labelling page.

One process: the page is served by uvicorn from a thread while the round engine runs in the main
thread; the human judge's ``judge()`` blocks until the page's labels are in (or the round times
out). See docs/human-judge.md for why this design and how to resume.
"""

from __future__ import annotations

import argparse
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path

import uvicorn
from rich.console import Console

from prefloop.engine.round_engine import Roles, RunResult
from prefloop.judge.human.app import create_app
from prefloop.judge.human.judge import HumanJudge
from prefloop.spec import ActiveRun, load_activerun


@dataclass
class PageServer:
    """The labelling page served by uvicorn from a daemon thread, on a socket bound up front."""

    judge: HumanJudge
    host: str = "127.0.0.1"
    port: int = 0
    server: uvicorn.Server | None = None
    thread: threading.Thread | None = None
    sock: socket.socket | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        """The page's base URL (the bound port, also when 0 asked for any free one)."""
        assert self.sock is not None
        return f"http://{self.host}:{self.sock.getsockname()[1]}"

    def start(self) -> PageServer:
        """Bind, start serving, wait until uvicorn has started; attach the page to the judge."""
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((self.host, self.port))
        config = uvicorn.Config(create_app(self.judge), log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        sockets = [self.sock]
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": sockets}, daemon=True, name="judge-ui"
        )
        self.thread.start()
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError(f"the labelling page could not start on {self.url}")
            self.thread.join(0.05)
        self.judge.page_attached.set()
        return self

    def stop(self) -> None:
        """Stop serving and wait for the thread."""
        self.judge.page_attached.clear()
        if self.server is not None:
            self.server.should_exit = True
        if self.thread is not None:
            self.thread.join(10)
        if self.sock is not None:
            self.sock.close()


def human_judge_of(roles: Roles) -> HumanJudge:
    """The run's human judge inside its local judge role."""
    inner = getattr(roles.judge, "inner", None)
    if not isinstance(inner, HumanJudge):
        raise ValueError("prefloop judge-ui needs judge.kind: human in the manifest")
    return inner


def run_with_page(
    run: ActiveRun,
    *,
    manifest_dir: Path | None,
    output: str | None,
    resume: bool,
    host: str,
    port: int,
    console: Console | None = None,
) -> RunResult:
    """Run ``run`` embedded with the labelling page on ``host:port`` until the run ends."""
    from prefloop.engine.build import build_embedded_roles
    from prefloop.engine.preflight import check_run_dir, run_dir_for
    from prefloop.engine.runner import execute

    if run.spec.judge.kind != "human":
        raise ValueError("prefloop judge-ui needs judge.kind: human in the manifest")
    console = console or Console(stderr=True)
    run_dir = run_dir_for(run, output)
    check_run_dir(run, run_dir, resume=resume)
    roles, _, _ = build_embedded_roles(run, run_dir, manifest_dir)
    page = PageServer(human_judge_of(roles), host, port).start()
    console.print(f"labelling page: {page.url}/ (sign in with an annotator token)", highlight=False)
    try:
        return execute(
            run,
            manifest_dir=manifest_dir,
            output=output,
            resume=resume,
            roles=roles,
            console=console,
            protect_existing=True,
        )
    finally:
        page.stop()


def add_judge_ui_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The ``judge-ui`` subcommand's parser."""
    from prefloop.cli import EXIT_STATUS_HELP, _overrides_argument

    p = sub.add_parser(
        "judge-ui",
        help="run a judge.kind: human run embedded, with its labelling page",
        description="Run an ActiveRun whose judge is people: the rounds wait for the labels "
        "given on the page served at --host:--port (docs/human-judge.md).",
        epilog=EXIT_STATUS_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("manifest", type=Path, help="ActiveRun YAML file with judge.kind: human")
    p.add_argument("--port", type=int, required=True, help="port of the labelling page")
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="interface of the page (default 127.0.0.1: loopback only; put it behind a TLS "
        "proxy before opening it to other hosts)",
    )
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    p.add_argument("--output", help="run directory (default: spec.output.dir)")
    _overrides_argument(p)


def run_judge_ui(args: argparse.Namespace) -> int:
    """``prefloop judge-ui``: the run with its page; 0 when the run ends."""
    run = load_activerun(args.manifest, args.overrides)
    run_with_page(
        run,
        manifest_dir=args.manifest.resolve().parent,
        output=args.output,
        resume=args.resume,
        host=args.host,
        port=args.port,
    )
    return 0
