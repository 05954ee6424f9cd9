"""A role service's /metrics: the standard gRPC families, runtime collectors, build info.

Each expectation is a number the calls in the ``live_scrape`` fixture determine, so a wrong
count, a missing label or a counted health check fails the test.
"""

from __future__ import annotations

import platform
from importlib import metadata

from monitoring_helpers import (
    ACQUISITION,
    DRIVER_ROW,
    GENERATION,
    HEALTH_CHECKS,
    LIST_METHODS_CALLS,
    PROMPTS_STREAMED,
    REFLECTION,
    REFLECTION_REQUESTS,
    LiveScrape,
)
from prometheus_client.parser import text_string_to_metric_families

from prefloop import __version__

RUNTIME_FAMILIES = (
    "process_resident_memory_bytes",
    "process_cpu_seconds_total",
    "process_open_fds",
    "python_info",
    "python_gc_objects_collected_total",
)
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def samples(text: str) -> Samples:
    """Every sample of a scrape, keyed by (sample name, labels)."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(text: str, name: str, **labels: str) -> float:
    """The sample ``name{labels}`` (KeyError naming it when absent)."""
    key = (name, frozenset(labels.items()))
    got = samples(text)
    if key not in got:
        raise KeyError(f"{name}{labels} not in the scrape")
    return got[key]


def rpc(grpc_type: str, service: str, method: str) -> dict[str, str]:
    return {"grpc_type": grpc_type, "grpc_service": service, "grpc_method": method}


def test_unary_calls_follow_go_grpc_prometheus(live_scrape: LiveScrape) -> None:
    text, n = live_scrape.service_text, LIST_METHODS_CALLS
    lm = rpc("unary", ACQUISITION, "ListMethods")
    assert value(text, "grpc_server_started_total", **lm) == n
    assert value(text, "grpc_server_handled_total", **lm, grpc_code="OK") == n
    assert value(text, "grpc_server_msg_received_total", **lm) == n
    assert value(text, "grpc_server_msg_sent_total", **lm) == n
    assert value(text, "grpc_server_handling_seconds_count", **lm) == n
    assert value(text, "grpc_server_handling_seconds_bucket", **lm, le="+Inf") == n


def test_failed_unary_call_has_its_code_and_sends_nothing(live_scrape: LiveScrape) -> None:
    text = live_scrape.service_text
    sel = rpc("unary", ACQUISITION, "Select")
    assert value(text, "grpc_server_started_total", **sel) == 1
    assert value(text, "grpc_server_handled_total", **sel, grpc_code="INVALID_ARGUMENT") == 1
    assert value(text, "grpc_server_msg_received_total", **sel) == 1
    assert ("grpc_server_msg_sent_total", frozenset(sel.items())) not in samples(text)
    assert value(text, "prefloop_rpc_requests_total", service=ACQUISITION, method="Select",
                 code="INVALID_ARGUMENT") == 1  # fmt: skip


def test_server_stream_counts_one_message_per_prompt(live_scrape: LiveScrape) -> None:
    text = live_scrape.service_text
    gen = rpc("server_stream", GENERATION, "Generate")
    assert value(text, "grpc_server_started_total", **gen) == 2
    assert value(text, "grpc_server_handled_total", **gen, grpc_code="OK") == 1
    assert value(text, "grpc_server_handled_total", **gen, grpc_code="INVALID_ARGUMENT") == 1
    assert value(text, "grpc_server_msg_received_total", **gen) == 2
    assert value(text, "grpc_server_msg_sent_total", **gen) == PROMPTS_STREAMED
    assert value(text, "prefloop_responses_generated_total") == 0  # precomputed: none new


def test_bidi_stream_counts_both_directions(live_scrape: LiveScrape) -> None:
    text, n = live_scrape.service_text, REFLECTION_REQUESTS
    refl = rpc("bidi_stream", REFLECTION, "ServerReflectionInfo")
    assert value(text, "grpc_server_started_total", **refl) == 1
    assert value(text, "grpc_server_msg_received_total", **refl) == n
    assert value(text, "grpc_server_msg_sent_total", **refl) == n
    assert value(text, "grpc_server_handled_total", **refl, grpc_code="OK") == 1


def test_health_checks_are_not_counted(live_scrape: LiveScrape) -> None:
    assert HEALTH_CHECKS > 0
    for (name, labels), _ in samples(live_scrape.service_text).items():
        label_values = {v for _, v in labels}
        assert "grpc.health.v1.Health" not in label_values, (name, dict(labels))


def test_build_info_and_runtime_collectors(live_scrape: LiveScrape) -> None:
    for text in (live_scrape.service_text, live_scrape.driver_text):
        info = value(
            text,
            "prefloop_build_info",
            version=__version__,
            python=platform.python_version(),
            torch=metadata.version("torch"),
        )
        assert info == 1
        names = {name for name, _ in samples(text)}
        for family in RUNTIME_FAMILIES:
            assert family in names, family


def test_driver_gauges_follow_the_round(live_scrape: LiveScrape) -> None:
    text, run = live_scrape.driver_text, live_scrape.run
    name = run.metadata.name
    assert value(text, "prefloop_run_round", run=name) == DRIVER_ROW["round"]
    assert value(text, "prefloop_run_annotations_used", run=name) == DRIVER_ROW["annotations_used"]
    assert (
        value(text, "prefloop_run_annotations_budget", run=name) == run.spec.budget.max_annotations
    )
    accuracy = DRIVER_ROW["heldout_accuracy"]
    assert value(text, "prefloop_run_heldout_accuracy_ratio", run=name) == accuracy
    assert value(text, "prefloop_run_reward_model_version", run=name) == DRIVER_ROW["model_version"]
    assert value(text, "prefloop_run_finished", run=name) == 0
    assert value(text, "prefloop_run_round_duration_seconds_count", run=name) == 1
    assert value(text, "prefloop_run_info", run=name, method=run.spec.acquisition.method,
                 seed=str(run.spec.seed)) == 1  # fmt: skip
