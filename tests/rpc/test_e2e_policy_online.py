"""AE-Borda-DPO online through the services: the generation service samples ``backend: policy``
entries from the policy version the engine names (issue 11).

A 3-round run (tiny Llama policy, three ``backend: policy`` pool entries, AE-Borda, a tiny
reward-model judge) through the five ``prefloop serve --kafka`` subprocesses and a real Tansu
broker gives the embedded run's dataset byte for byte: round r's Generate names
``policy_version = r - 1`` and the generation service loads that version from the checkpoints
topic, exactly as the reward service does. A version it cannot obtain is refused with an error
naming the field, the version and where it looked.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
import torch
from rich.console import Console
from rpc_helpers import (
    QUICKSTART,
    InProcessServer,
    context,
    expect,
    free_port,
    judge_log_lines,
    run_connected,
    shrunk_run,
    started_services,
)
from transformers import LlamaForSequenceClassification

from _tiny_llama import (
    online_policy_overrides,
    save_tiny_causal_lm,
    tiny_config,
    tiny_tokenizer,
)
from prefloop.bus.kafka_bus import KafkaBus
from prefloop.bus.publisher import RunPublisher
from prefloop.data.run_dataset import dataset_file
from prefloop.data.writers import read_dataset
from prefloop.engine.runner import execute
from prefloop.rpc import generation_service, handoff
from prefloop.rpc.common import ServiceContext
from prefloop.rpc.metrics import ServiceMetrics
from prefloop.rpc.server import ServerConfig
from prefloop.v1 import common_pb2, generation_pb2, generation_pb2_grpc

PROMPTS = ["name a colour", "count to three", "say hello", "pick a fruit", "name a day", "hi"]
SAMPLERS = ("policy-a", "policy-b", "policy-c")


@dataclass(frozen=True)
class OnlineRun:
    extra: tuple[str, ...]
    model_dir: Path


@pytest.fixture(scope="module")
def online(tmp_path_factory: pytest.TempPathFactory) -> OnlineRun:
    """The tiny policy, the tiny reward-model judge and the overrides of a 3-round online run
    (6 prompts, 2 per round, no held-out split: sampled responses have no stored scores)."""
    base = tmp_path_factory.mktemp("online")
    prompts = base / "prompts.jsonl"
    prompts.write_text(
        "".join(
            json.dumps({"prompt_id": f"p{i}", "prompt": p}) + "\n" for i, p in enumerate(PROMPTS)
        )
    )
    model_dir = save_tiny_causal_lm(base / "lm", PROMPTS * 3, seed=1)
    judge_dir = base / "rm"
    tokenizer = tiny_tokenizer(PROMPTS * 4)
    torch.manual_seed(0)
    LlamaForSequenceClassification(tiny_config(tokenizer, num_labels=1)).save_pretrained(judge_dir)
    tokenizer.save_pretrained(judge_dir)
    extra = tuple(online_policy_overrides(prompts, SAMPLERS, judge_dir, model_dir, 6))
    return OnlineRun(extra, model_dir)


@pytest.fixture
def one_thread() -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.mark.slow
def test_online_ae_borda_through_services_equals_embedded(
    online: OnlineRun, kafka_bootstrap: str, tmp_path: Path, one_thread: None
) -> None:
    cache = tmp_path / "features"
    with open(os.devnull, "w") as sink:
        execute(
            shrunk_run(cache, online.extra),
            manifest_dir=QUICKSTART.parent,
            output=str(tmp_path / "embedded"),
            console=Console(file=sink),
        )
    embedded = dataset_file(tmp_path / "embedded").read_text()
    rows = read_dataset(dataset_file(tmp_path / "embedded"))
    # a pair from each of the 3 rounds: rounds 2 and 3 sampled from trained versions (the
    # starting weights answer otherwise there: tests/trainer/test_policy_online.py)
    assert len({r["round"] for r in rows}) == 3
    assert {r["chosen_model"] for r in rows} <= set(SAMPLERS)

    with started_services(cache, tmp_path, kafka_bootstrap, online.extra) as procs:
        run_connected(procs, cache, tmp_path / "svc", kafka=kafka_bootstrap, extra=online.extra)
        assert dataset_file(tmp_path / "svc").read_text() == embedded
        verdicts = [v["pair_id"] for v in judge_log_lines(tmp_path)]
        assert len(verdicts) == len(set(verdicts))  # each pair judged once
        assert {r["pair_id"] for r in rows} <= set(verdicts)

        # a version nobody announced: the call waits out its deadline, then UNAVAILABLE
        with grpc.insecure_channel(procs["generation"].address) as ch:
            stub = generation_pb2_grpc.GenerationServiceStub(ch)
            request = generation_pb2.GenerateRequest(
                run=common_pb2.RunRef(run="quickstart"),
                prompts=[common_pb2.Prompt(prompt_id="x", text="hi")],
                seed=1,
                policy_version=9,
            )
            with pytest.raises(grpc.RpcError) as err:
                list(stub.Generate(request, timeout=2))
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE, err.value.details()
        details = err.value.details() or ""
        assert "policy_version: version 9 of run 'quickstart'" in details
        assert "prefloop.quickstart.checkpoints" in details


def test_generation_service_loads_the_asked_version_or_refuses(
    online: OnlineRun, kafka_bootstrap: str, tmp_path: Path
) -> None:
    """Without --kafka the versions come from the checkpoint directory: version 2 published is
    loaded exactly; version 1 (gone, a newer one exists) is refused at once; with --kafka a
    version announced only by a uri this service cannot read is refused naming the uri."""
    run = shrunk_run(tmp_path / "features", online.extra)
    metrics = ServiceMetrics()
    servicer = generation_service.GenerationServicer(context(run, tmp_path, metrics))
    assert servicer.versions is not None
    served = servicer.versions.served
    start = {k: v.clone() for k, v in served.published_state().items()}
    trained = {k: v + 0.01 for k, v in start.items()}
    handoff.publish(tmp_path / "ckpt", "quickstart", 2, trained)
    server = InProcessServer(
        [generation_service.register(servicer)], metrics, ServerConfig(metrics_port=free_port())
    )
    try:
        with grpc.insecure_channel(server.address) as ch:
            stub = generation_pb2_grpc.GenerationServiceStub(ch)

            def generate(version: int) -> list[generation_pb2.GenerateResponse]:
                request = generation_pb2.GenerateRequest(
                    run=common_pb2.RunRef(run="quickstart"), seed=3, policy_version=version
                )
                request.prompts.add(prompt_id="p0", text="say hello")
                return list(stub.Generate(request, timeout=30))

            replies = generate(2)
            assert served.model.version == 2
            assert len(replies[0].prompt.responses) == len(SAMPLERS)
            held = served.published_state()
            assert all(torch.equal(held[k], trained[k]) for k in trained)
            generate(0)  # version 0: the starting policy again
            held = served.published_state()
            assert served.model.version == 0 and all(torch.equal(held[k], start[k]) for k in start)
            expect(
                grpc.StatusCode.INVALID_ARGUMENT,
                ["policy_version: version 1", "published: [2]", "pruned or retracted"],
                lambda timeout: generate(1),
            )
    finally:
        server.stop()

    bus = KafkaBus(kafka_bootstrap, client_id="prefloop-tests")
    try:
        publisher = RunPublisher(bus, "quickstart")
        publisher.ensure_topics()
        publisher.checkpoint(1, str(tmp_path / "elsewhere" / "v000001.pt"), None)
        ctx = ServiceContext(run, QUICKSTART.parent, tmp_path / "s2", tmp_path / "c2", metrics, bus)
        fed = generation_service.GenerationServicer(ctx)
        server = InProcessServer(
            [generation_service.register(fed)], metrics, ServerConfig(metrics_port=free_port())
        )
        try:
            with grpc.insecure_channel(server.address) as ch:
                stub = generation_pb2_grpc.GenerationServiceStub(ch)
                request = generation_pb2.GenerateRequest(
                    run=common_pb2.RunRef(run="quickstart"), seed=3, policy_version=1
                )
                request.prompts.add(prompt_id="p0", text="say hello")
                expect(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    ["policy_version: version 1", "elsewhere/v000001.pt", "--checkpoint-dir"],
                    stub.Generate,
                    request,
                )
        finally:
            server.stop()
    finally:
        bus.close()
