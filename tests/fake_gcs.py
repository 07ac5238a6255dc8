"""A Google Cloud Storage server on 127.0.0.1 that every library of the stack reaches (tests only).

`FakeGcs.start(folder)` runs `python tests/fake_gcs.py` in a process of its own (a library call
that holds the GIL must not stall the server) and returns once it listens; `.env` is what a
process needs to use it, `.create_bucket(name)`, `.objects(prefix)` and `.fail_reads(...)` work
on it from the test. Inside that process:

- `gcp-storage-emulator`, in memory: the GCS JSON, upload and download APIs, on a port only the
  front below talks to.
- A front on two ports that reads each request's head and forwards it. Port `direct` is plain
  HTTP: tensorstore (orbax's array reader and writer) reaches it through `TENSORSTORE_GCS_HTTP_URL`,
  Google's Python clients (`google-cloud-storage`, which orbax asks about the bucket) through
  `STORAGE_EMULATOR_HOST`. Port `proxy` is for TensorFlow's GCS file system (tf.io.gfile, hence
  etils.epath, orbax's directory operations, clu's TensorBoard writer and TFDS), whose endpoints
  are compiled in (https://www.googleapis.com, https://storage.googleapis.com) with no setting to
  change them; it honours `https_proxy` and `CURL_CA_BUNDLE`, so the front answers its CONNECT,
  terminates TLS with a certificate for those two names from a throwaway test CA and forwards the
  HTTP inside. It connects to nothing but the emulator: no request leaves the machine.

The front also smooths over what the emulator's HTTP/1.0 server does not do: it answers
`Expect: 100-continue` itself (curl would wait a second per upload), drops `Content-Length` where
`Transfer-Encoding: chunked` is also sent (TensorFlow sends both; HTTP says the length is then
ignored), and turns the emulator's links to itself (a resumable upload's `Location`) back into the
scheme the client used. Two emulator gaps are filled: an empty upload (each directory marker
TensorFlow writes) is stored empty instead of failing, and `GET b/<bucket>/storageLayout` (asked
before a directory rename) answers as for a flat bucket. `FAKE_GCS_TRACE=1` prints each request head.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from http import HTTPStatus
from typing import Any

TRACE = os.environ.get("FAKE_GCS_TRACE") == "1"
GCS_HOSTS = ("www.googleapis.com", "storage.googleapis.com")
_FAILURES: dict[str, int] = {}  # object name prefix -> reads left to fail with 503 (fail_reads)


# ------------------------------------------------------------------------------- the test's side
class FakeGcs:
    """A running server (see the module docstring); `stop()` ends it."""

    def __init__(self, process: subprocess.Popen, ports: dict[str, int], ca_file: str):
        self.process, self.ports = process, ports
        direct = f"http://127.0.0.1:{ports['direct']}"
        proxy = f"http://127.0.0.1:{ports['proxy']}"
        closed = "127.0.0.1:9"  # nothing listens there: a metadata-server query fails at once, locally
        self.url = direct
        self.env = {
            "TENSORSTORE_GCS_HTTP_URL": direct,
            "STORAGE_EMULATOR_HOST": direct,
            "https_proxy": proxy,
            "HTTPS_PROXY": proxy,
            "no_proxy": "127.0.0.1,localhost",
            "NO_PROXY": "127.0.0.1,localhost",
            "CURL_CA_BUNDLE": ca_file,
            "GOOGLE_AUTH_TOKEN_FOR_TESTING": "test-token",  # TensorFlow and tensorstore: no credential search
            "GOOGLE_CLOUD_PROJECT": "test",
            "GCE_METADATA_HOST": closed,
            "GCE_METADATA_ROOT": closed,
            "GCE_METADATA_IP": closed,
            "NO_GCE_CHECK": "true",
            # TensorFlow retries a failed request 10 times from 1 s up: here once, after 0.1 s, so an
            # injected failure reaches the project's own handling in seconds.
            "GCS_RETRY_CONFIG_MAX_RETRIES": "1",
            "GCS_RETRY_CONFIG_INIT_DELAY_TIME_US": "100000",
        }

    @classmethod
    def start(cls, folder: str, timeout: float = 60.0) -> FakeGcs:
        import trustme

        ca = trustme.CA()
        cert = ca.issue_cert(*GCS_HOSTS)
        files = {name: os.path.join(folder, f"{name}.pem") for name in ("ca", "cert", "key")}
        ca.cert_pem.write_to_path(files["ca"])
        cert.cert_chain_pems[0].write_to_path(files["cert"])
        cert.private_key_pem.write_to_path(files["key"])
        ready = os.path.join(folder, "ports.json")
        log = open(os.path.join(folder, "server.log"), "w")
        process = subprocess.Popen(
            [sys.executable, __file__, "--ready_file", ready, "--cert", files["cert"], "--key", files["key"]],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={k: v for k, v in os.environ.items() if "proxy" not in k.lower()},
        )
        deadline = time.time() + timeout
        while not os.path.exists(ready):
            if process.poll() is not None or time.time() > deadline:
                process.kill()
                raise RuntimeError(f"the GCS emulator did not start; see {log.name}")
            time.sleep(0.05)
        with open(ready) as f:
            return cls(process, json.load(f), files["ca"])

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.url}{path}", data, method=method)
        request.add_header("Content-Type", "application/json")
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(request, timeout=30) as response:
            raw = response.read()
        return json.loads(raw) if raw.strip() else None

    def create_bucket(self, name: str) -> None:
        self._call("POST", "/storage/v1/b?project=test", {"name": name})

    def upload(self, bucket: str, name: str, data: bytes) -> None:
        """Stores `data` as `name`, straight through the API (not through the code under test)."""
        query = urllib.parse.urlencode({"uploadType": "media", "name": name})
        request = urllib.request.Request(f"{self.url}/upload/storage/v1/b/{bucket}/o?{query}", data, method="POST")
        with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(request, timeout=60):
            pass

    def read(self, bucket: str, name: str) -> bytes:
        """An object's bytes, straight from the API."""
        quoted = urllib.parse.quote(name, safe="")
        url = f"{self.url}/download/storage/v1/b/{bucket}/o/{quoted}?alt=media"
        with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(url, timeout=60) as response:
            return response.read()

    def objects(self, bucket: str, prefix: str = "") -> dict[str, int]:
        """{name: size} of every object under `prefix`."""
        query = urllib.parse.urlencode({"prefix": prefix})
        return {
            o["name"]: int(o["size"]) for o in self._call("GET", f"/storage/v1/b/{bucket}/o?{query}").get("items", [])
        }

    def fail_reads(self, prefix: str, count: int) -> None:
        """The next `count` reads of objects under `prefix` (any client) answer 503, as GCS does under load."""
        self._call("POST", "/_test/fail_reads", {"prefix": prefix, "count": count})


# ------------------------------------------------------------------------------- the server
def _read_head(conn: socket.socket) -> tuple[bytes, bytes]:
    """(head without the blank line, bytes after it) of the message arriving on `conn`."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return data, b""
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    return head, rest


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    try:
        while chunk := src.recv(65536):
            dst.sendall(chunk)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)


def _injected_failure(request_line: bytes) -> bool:
    """A read (GET of an object's bytes) under a prefix `fail_reads` armed."""
    parts = request_line.decode(errors="replace").split()
    if len(parts) < 2 or parts[0] != "GET" or not _FAILURES:
        return False
    path = urllib.parse.unquote(urllib.parse.urlsplit(parts[1]).path)
    for prefix, left in list(_FAILURES.items()):
        if left > 0 and prefix in path:
            _FAILURES[prefix] = left - 1
            return True
    return False


def _relay(client: socket.socket, api_port: int, scheme: bytes) -> None:
    """One request from `client` to the emulator (which answers one per connection) and its answer back."""
    head, rest = _read_head(client)
    if not head:
        return
    lines = head.split(b"\r\n")
    if TRACE:
        print(head.decode(errors="replace"), file=sys.stderr, flush=True)
    names = [line.split(b":", 1)[0].strip().lower() for line in lines[1:]]
    keep = [lines[0]]
    chunked = any(line.lower().replace(b" ", b"") == b"transfer-encoding:chunked" for line in lines[1:])
    expect = False
    for name, line in zip(names, lines[1:], strict=True):
        if name == b"expect":
            expect = True
            continue
        if name == b"content-length" and chunked:
            continue
        keep.append(line)
    if lines[0].startswith(b"POST /_test/fail_reads"):
        body = json.loads(rest or client.recv(65536))
        _FAILURES[body["prefix"]] = body["count"]
        client.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n")
        return
    if _injected_failure(lines[0]):
        client.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        return
    if expect:
        client.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
    with socket.create_connection(("127.0.0.1", api_port)) as upstream:
        upstream.sendall(b"\r\n".join(keep) + b"\r\n\r\n" + rest)
        sender = threading.Thread(target=_pipe, args=(client, upstream), daemon=True)
        sender.start()
        answer, body = _read_head(upstream)
        answer = answer.replace(b"Location: http://", b"Location: " + scheme + b"://")
        if TRACE:
            print("  ->", answer.split(b"\r\n", 1)[0].decode(errors="replace"), body[:300], file=sys.stderr, flush=True)
        with contextlib.suppress(OSError):
            client.sendall(answer + b"\r\n\r\n" + body)
            _pipe(upstream, client)
        sender.join(timeout=5)


def _serve_connect(conn: socket.socket, tls: ssl.SSLContext, api_port: int) -> None:
    """A CONNECT to a GCS host: TLS ends here, the request inside goes to the emulator."""
    with conn:
        head, _ = _read_head(conn)
        parts = head.split(b"\r\n", 1)[0].split()
        host = parts[1].decode().rsplit(":", 1)[0] if len(parts) >= 2 and parts[0] == b"CONNECT" else None
        if host not in GCS_HOSTS:  # this proxy reaches the emulator and nothing else
            conn.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
            return
        conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        try:
            inner = tls.wrap_socket(conn, server_side=True)
        except (ssl.SSLError, OSError):
            return
        with inner:
            _relay(inner, api_port, b"https")


def _serve_direct(conn: socket.socket, api_port: int) -> None:
    with conn:
        _relay(conn, api_port, b"http")


def _patch_emulator() -> None:
    """Two gaps of the emulator (see the module docstring), filled in this process only."""
    from gcp_storage_emulator import server
    from gcp_storage_emulator.handlers import objects

    media_upload = objects._media_upload

    def upload(request, response, storage):
        if request.data is None:
            request._data = b""
        return media_upload(request, response, storage)

    objects._media_upload = upload

    def layout(request, response, storage, *args, **kwargs):
        name = request.params["bucket_name"]
        if not storage.buckets.get(name):
            response.status = 404
            return
        flat = {"enabled": False}
        response.json({"kind": "storage#storageLayout", "bucket": name, "hierarchicalNamespace": flat})

    route = rf"^{server.settings.API_ENDPOINT}/b/(?P<bucket_name>[-.\w]+)/storageLayout$"
    server.HANDLERS = ((route, {server.GET: layout}), *server.HANDLERS)

    def generation(request, storage) -> str | None:
        try:
            return str(storage.get_file_obj(request.params["bucket_name"], request.params["object_id"])["generation"])
        except Exception:  # no such object
            return None

    def unmet(request, current: str | None) -> HTTPStatus | None:
        """GCS's generation preconditions (tensorstore's OCDBT manifest depends on them)."""
        match, not_match = request.query.get("ifGenerationMatch"), request.query.get("ifGenerationNotMatch")
        if match and match[0] != (current or "0"):
            return HTTPStatus.PRECONDITION_FAILED
        if not_match and current is not None and not_match[0] == current:
            return HTTPStatus.NOT_MODIFIED
        return None

    download, insert = objects.download, objects.insert

    def download_checked(request, response, storage, *args, **kwargs):
        current = generation(request, storage)
        if current is not None:
            status = unmet(request, current)
            if status is not None:
                response.status = status
                return None
            response["x-goog-generation"] = current  # tensorstore reads the generation from it
            response["x-goog-metageneration"] = "1"
        return download(request, response, storage, *args, **kwargs)

    def insert_checked(request, response, storage, *args, **kwargs):
        name = request.query.get("name")
        if name and request.query.get("ifGenerationMatch"):
            request.params["object_id"] = name[0]
            status = unmet(request, generation(request, storage))
            if status is not None:
                response.status = status
                return None
        return insert(request, response, storage, *args, **kwargs)

    objects.download = download_checked  # objects.get calls it by this name
    replace = {download: download_checked, insert: insert_checked}
    server.HANDLERS = tuple((r, {m: replace.get(f, f) for m, f in h.items()}) for r, h in server.HANDLERS)


def _listen(handler, *args) -> int:
    listener = socket.create_server(("127.0.0.1", 0))
    listener.listen(128)

    def accept():
        while True:
            conn, _ = listener.accept()
            threading.Thread(target=handler, args=(conn, *args), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    return listener.getsockname()[1]


def serve(ready_file: str, cert_file: str, key_file: str) -> None:
    from gcp_storage_emulator.server import create_server

    _patch_emulator()
    probe = socket.create_server(("127.0.0.1", 0))
    api_port = probe.getsockname()[1]
    probe.close()  # the emulator binds the port itself (loopback only)
    create_server("127.0.0.1", api_port, in_memory=True).start()
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert_file, key_file)
    ports = {"direct": _listen(_serve_direct, api_port), "proxy": _listen(_serve_connect, tls, api_port)}
    with open(f"{ready_file}.tmp", "w") as f:
        json.dump(ports, f)
    os.replace(f"{ready_file}.tmp", ready_file)
    threading.Event().wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--ready_file", required=True)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    args = parser.parse_args()
    serve(args.ready_file, args.cert, args.key)
