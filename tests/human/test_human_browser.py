"""The labelling page in a real headless Chromium (Debian chromium + chromium-driver, Selenium
with the driver path set, so nothing is downloaded), for a running embedded run.

Skipped, with the reason printed, when Chromium or its driver is missing (.ci/run installs them).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from _human_run import human_judge_spec, live_run, manifest, write_pool

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
_missing = [p for p in (CHROMIUM, CHROMEDRIVER) if shutil.which(p) is None]
pytestmark = pytest.mark.skipif(
    bool(_missing),
    reason=f"headless Chromium missing ({', '.join(_missing)}): apt-get install chromium "
    "chromium-driver (.ci/run does)",
)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[object]:
    """Headless Chromium with a fresh profile, its network log on."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1400,1000",
        f"--user-data-dir={tmp_path / 'profile'}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def _network(driver: object) -> tuple[list[str], dict[str, set[int]]]:
    """URLs the page requested, and the statuses answered per URL (the log drains on read)."""
    urls: list[str] = []
    statuses: dict[str, set[int]] = {}
    for entry in driver.get_log("performance"):  # type: ignore[attr-defined]
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
        elif message["method"] == "Network.responseReceived":
            response = message["params"]["response"]
            statuses.setdefault(response["url"], set()).add(int(response["status"]))
    return urls, statuses


def test_label_a_round_in_the_browser(
    repo_root: Path, tmp_path: Path, tokens_file: Path, human_feature_cache: Path, browser: object
) -> None:
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.common.by import By

    d = browser
    pool = tmp_path / "pool.jsonl"
    write_pool(repo_root, pool, xss=True)
    spec = human_judge_spec(tokens_file, annotatorsPerPair=2, leads=["alice"])
    live = live_run(manifest(tmp_path, pool, human_feature_cache, spec), tmp_path / "run").start()
    url = live.url

    # a wrong token is refused, on the login form and as a bearer token
    assert httpx.post(f"{url}/login", data={"token": "wrong"}).status_code == 401
    assert httpx.get(f"{url}/api/next", headers={"Authorization": "Bearer x"}).status_code == 401
    assert httpx.get(f"{url}/").status_code == 401
    d.get(f"{url}/login")  # type: ignore[attr-defined]
    d.find_element(By.ID, "token").send_keys("wrong")  # type: ignore[attr-defined]
    d.find_element(By.ID, "login").submit()  # type: ignore[attr-defined]
    assert "Unknown token" in d.find_element(By.ID, "login-error").text  # type: ignore[attr-defined]

    d.find_element(By.ID, "token").send_keys("alice-secret-token")  # type: ignore[attr-defined]
    d.find_element(By.ID, "login").submit()  # type: ignore[attr-defined]

    def shown_pair() -> str | None:
        forms = d.find_elements(By.ID, "label-form")  # type: ignore[attr-defined]
        return forms[0].get_attribute("data-pair") if forms else None

    def press(key: str) -> None:
        """A shortcut key; each one submits a form: wait until the next page has loaded."""
        from selenium.webdriver.support import expected_conditions
        from selenium.webdriver.support.ui import WebDriverWait

        body = d.find_element(By.TAG_NAME, "body")  # type: ignore[attr-defined]
        body.send_keys(key)
        wait: Any = WebDriverWait(d, 60)
        wait.until(expected_conditions.staleness_of(body))
        wait.until(lambda drv: drv.execute_script("return document.readyState") == "complete")

    def wait_for_pair() -> str:
        for _ in range(600):
            if (pid := shown_pair()) is not None:
                return pid
            d.refresh()  # type: ignore[attr-defined]
        raise AssertionError("no pair shown")

    seen: list[str] = []
    first = wait_for_pair()  # may reload the page: elements are looked up after it
    # the untrusted response is shown as text, never run
    if "alert(1)" in d.page_source:  # type: ignore[attr-defined]
        text = d.find_element(By.CLASS_NAME, "sides").text  # type: ignore[attr-defined]
        assert "<script>alert(1)</script>" in text
        assert "<img src=x onerror=" in text
    with pytest.raises(NoAlertPresentException):
        d.switch_to.alert.text  # type: ignore[attr-defined]  # noqa: B018
    d.save_screenshot(str(repo_root / "docs" / "img" / "human-judge.png"))  # type: ignore[attr-defined]

    press("1")
    seen.append(first)
    second = wait_for_pair()
    assert second != first
    d.refresh()  # type: ignore[attr-defined]  # mid-round reload: same next pair, nothing lost
    assert shown_pair() == second
    events = (tmp_path / "run" / "human-labels" / "events.jsonl").read_text().splitlines()
    assert [json.loads(e)["pair_id"] for e in events] == [first]

    press("u")  # undo
    assert shown_pair() == first
    press("1")
    press("2")
    seen.append(second)

    # bob votes the other way on the first pair and the same on the second: a tie and a win
    bob = {"Authorization": "Bearer bob-secret-token"}
    with httpx.Client(base_url=url, headers=bob) as client:
        while len(seen) - 2 < 2:
            nxt = client.get("/api/next").json()
            if nxt["pair"] is None:
                break
            pid = nxt["pair"]["pair_id"]
            alice = [
                json.loads(e)
                for e in (tmp_path / "run" / "human-labels" / "events.jsonl")
                .read_text()
                .splitlines()
            ]
            alice_choice = [
                e["choice"] for e in alice if e["pair_id"] == pid and e["event"] == "label"
            ][-1]
            choice = {"a": "b", "b": "a"}[alice_choice] if pid == first else alice_choice
            r = client.post(
                "/api/label", data={"pair_id": pid, "choice": choice, "csrf": nxt["csrf"]}
            )
            assert r.status_code == 200
            seen.append(pid)
    # CSRF: a label without the form's token is refused
    no_csrf = httpx.post(f"{url}/api/label", headers=bob, data={"pair_id": first, "choice": "a"})
    assert no_csrf.status_code == 403

    # the rest of the run: both label every remaining pair by the API, the first response wins
    while live.thread is not None and live.thread.is_alive():
        progressed = False
        for token in ("alice-secret-token", "bob-secret-token"):
            with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as c:
                nxt = c.get("/api/next").json()
                if nxt["pair"] is not None:
                    c.post(
                        "/api/label",
                        data={
                            "pair_id": nxt["pair"]["pair_id"],
                            "choice": "a",
                            "csrf": nxt["csrf"],
                        },
                    )
                    progressed = True
        if not progressed:
            live.thread.join(0.05)
    result = live.finish()

    urls, statuses = _network(d)
    assert not any("/pwned" in u for u in urls), "the onerror handler ran"
    # the stylesheets and the script load, on the sign-in form too (no token needed for them)
    for asset in ("/static/style.css", "/static-gen/highlight.css", "/static/app.js"):
        assert statuses.get(f"{url}{asset}") == {200}, (asset, statuses.get(f"{url}{asset}"))
    rounds = [
        json.loads(line)
        for line in (tmp_path / "run" / "human-labels" / "rounds.jsonl").read_text().splitlines()
    ]
    assert rounds[0]["human_votes"] == 4 and rounds[0]["human_agreement_kind"] == "cohen"
    by_pair = {r["pair_id"]: r for r in result.rows}
    assert by_pair[first]["tie"] is True and by_pair[second]["tie"] is False
