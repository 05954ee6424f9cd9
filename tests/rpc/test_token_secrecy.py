"""The bearer token appears in no repr and no log line (issue 8, item 5).

A real AcquisitionService with token auth on loopback and the real client role: a call that
succeeds, a call with the wrong token, and a call to a dead address that is retried and given up
on, with every logger at DEBUG and the process's stdout/stderr captured. The token must not be
in any of it, nor in the repr of the client's config, caller or client.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from rpc_helpers import InProcessServer, free_port, shrunk_run

from prefloop.acquisition import AcquisitionInput
from prefloop.rpc import acquisition_service
from prefloop.rpc.clients import AcquisitionClient, ClientConfig, open_channel
from prefloop.rpc.metrics import ServiceMetrics
from prefloop.rpc.server import ServerConfig

TOKEN = "tok-8c1f-never-print-me"


def client_config(token: str) -> ClientConfig:
    deadlines = dict.fromkeys(("generation", "reward", "acquisition", "judge", "trainer"), 2.0)
    return ClientConfig(
        auth_token=token,
        deadlines=deadlines,
        max_attempts=2,
        backoff_initial=0.01,
        backoff_max=0.02,
    )


def test_the_token_is_in_no_repr_and_no_log_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    run = shrunk_run(tmp_path / "cache")
    metrics = ServiceMetrics()
    servicer = acquisition_service.AcquisitionServicer(metrics, run.metadata.name)
    srv = InProcessServer(
        [acquisition_service.register(servicer)], metrics, ServerConfig(auth_token_file=token_file)
    )
    rng = np.random.default_rng(3)
    inputs = AcquisitionInput(
        mean=rng.normal(size=(2, 3)), std=np.ones((2, 3)), mask=np.ones((2, 3), bool)
    )
    config = client_config(TOKEN)
    texts = [repr(config), str(config)]
    try:
        channel = open_channel(srv.address, config)
        client = AcquisitionClient(run, channel, config)
        texts += [repr(client.caller), repr(client)]
        assert client.select(inputs, method="random", params={}, seed=1).size == 2

        wrong = client_config("not-" + TOKEN)
        with pytest.raises(Exception) as denied:  # RpcError, or the role error of the client
            AcquisitionClient(run, open_channel(srv.address, wrong), wrong).select(
                inputs, method="random", params={}, seed=1
            )
        assert "UNAUTHENTICATED" in str(denied.value) or "Bearer" in str(denied.value)
        texts.append(str(denied.value))

        dead = f"127.0.0.1:{free_port()}"
        with pytest.raises(Exception) as gone:
            AcquisitionClient(run, open_channel(dead, config), config).select(
                inputs, method="random", params={}, seed=1
            )
        texts += [str(gone.value), repr(gone.value)]
        channel.close()
    finally:
        srv.stop()
    out, err = capfd.readouterr()
    assert caplog.records, "expected the retries to be logged"
    texts += [caplog.text, out, err]
    texts += [r.getMessage() for r in caplog.records]
    for text in texts:
        assert TOKEN not in text
