"""The broker's object store (``prefloop.bus.s3dir``) over real HTTP: objects are files,
conditional writes refuse a stale or duplicate create with 412, ranges and ListObjectsV2 (prefix,
delimiter, pagination) answer as S3 does, and a key cannot leave the directory."""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from xml.etree import ElementTree

import pytest

from prefloop.bus.s3dir import S3DirServer

NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"


@pytest.fixture(params=[False, True], ids=["page-cache", "fsync"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    server = S3DirServer(("127.0.0.1", 0), tmp_path / "objects", "tansu", False, request.param)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/tansu", tmp_path / "objects"
    finally:
        server.shutdown()
        server.server_close()


def call(
    method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, bytes, dict[str, str]]:
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read(), dict(resp.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read(), dict(e.headers)


def test_objects_are_files_and_conditional_writes_are_enforced(store: tuple[str, Path]) -> None:
    base, root = store
    status, _, headers = call("PUT", f"{base}/a/b/meta.json", b"v1", {"If-None-Match": "*"})
    assert status == 200
    etag = headers["ETag"]
    assert (root / "a" / "b" / "meta.json").read_bytes() == b"v1"
    assert call("PUT", f"{base}/a/b/meta.json", b"v2", {"If-None-Match": "*"})[0] == 412
    assert call("PUT", f"{base}/a/b/meta.json", b"v2", {"If-Match": '"stale"'})[0] == 412
    status, _, headers = call("PUT", f"{base}/a/b/meta.json", b"v2", {"If-Match": etag})
    assert status == 200 and headers["ETag"] != etag
    assert call("GET", f"{base}/a/b/meta.json")[1] == b"v2"
    status, body, headers = call("GET", f"{base}/a/b/meta.json", None, {"Range": "bytes=1-1"})
    assert status == 206 and body == b"2" and headers["Content-Range"] == "bytes 1-1/2"
    assert call("GET", f"{base}/a/missing")[0] == 404
    assert call("PUT", f"{base}/a/../../escape", b"x")[0] == 400
    assert not (root.parent / "escape").exists()
    assert call("DELETE", f"{base}/a/b/meta.json")[0] == 204
    assert call("GET", f"{base}/a/b/meta.json")[0] == 404


def test_list_objects_v2_prefix_delimiter_and_pages(store: tuple[str, Path]) -> None:
    base, _ = store
    for key in ("t/p0/r/0.batch", "t/p0/r/1.batch", "t/p1/r/0.batch", "t/p1/w.json", "u/x"):
        assert call("PUT", f"{base}/{key}", key.encode())[0] == 200

    def listing(query: str) -> ElementTree.Element:
        status, body, _ = call("GET", f"{base}?list-type=2&{query}")
        assert status == 200
        return ElementTree.fromstring(body)

    keys = [k.text for k in listing("prefix=t/p0/r/").iter(f"{NS}Key")]
    assert keys == ["t/p0/r/0.batch", "t/p0/r/1.batch"]
    top = listing("prefix=t/&delimiter=/")
    assert [p.text for p in top.iter(f"{NS}Prefix")][1:] == ["t/p0/", "t/p1/"]
    first = listing("prefix=t/&max-keys=2")
    assert first.findtext(f"{NS}IsTruncated") == "true"
    token = first.findtext(f"{NS}NextContinuationToken")
    rest = listing(f"prefix=t/&continuation-token={token}")
    pages = [k.text for k in first.iter(f"{NS}Key")] + [k.text for k in rest.iter(f"{NS}Key")]
    assert pages == ["t/p0/r/0.batch", "t/p0/r/1.batch", "t/p1/r/0.batch", "t/p1/w.json"]
