"""Real servers for the tests: a PostgreSQL cluster and `mlflow server`, started on loopback in
temporary directories and stopped afterwards. Nothing here is a stand-in: where a server cannot
be started (PostgreSQL or Chromium not installed), the tests that need it skip and say how to
install it (`.ci/run` installs both on a fresh Debian machine)."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

INSTALL_HINT = "install it with `apt-get install postgresql chromium` (.ci/run does this on a fresh machine)"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float, proc: subprocess.Popen | None = None, log: str | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}: {_tail(log)}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s: {_tail(log)}")


def _tail(path: str | None, n: int = 2000) -> str:
    if not path or not os.path.exists(path):
        return ""
    with open(path, encoding="utf-8", errors="replace") as fh:
        return fh.read()[-n:]


class MlflowServer:
    """`mlflow server` on a free loopback port, artifacts served by the server itself."""

    #: the admin account of a server started with `basic_auth=True`
    ADMIN = ("admin", "nnaudit-test-password")

    def __init__(self, backend_uri: str, root: str, basic_auth: bool = False) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = os.path.join(root, f"mlflow-server-{self.port}.log")
        env = dict(os.environ)
        for var in ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
            env.pop(var, None)
        extra = []
        if basic_auth:  # MLflow's own basic-auth app; users in their own sqlite file, nobody may read anonymously
            config = os.path.join(root, f"basic-auth-{self.port}.ini")
            with open(config, "w") as fh:
                fh.write(
                    "[mlflow]\ndefault_permission = READ\n"
                    f"database_uri = sqlite:///{os.path.join(root, f'auth-{self.port}.db')}\n"
                    f"admin_username = {self.ADMIN[0]}\nadmin_password = {self.ADMIN[1]}\n"
                )
            env["MLFLOW_AUTH_CONFIG_PATH"] = config
            env["MLFLOW_FLASK_SERVER_SECRET_KEY"] = "nnaudit-test-secret"
            extra = ["--app-name", "basic-auth"]
        with open(self.log, "w") as out:
            self.proc = subprocess.Popen(
                [
                    os.path.join(os.path.dirname(sys.executable), "mlflow"),
                    "server",
                    "--backend-store-uri",
                    backend_uri,
                    "--artifacts-destination",
                    os.path.join(root, "served-artifacts"),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--workers",
                    "1",
                    *extra,
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=root,
                start_new_session=True,
            )
        try:
            wait_http(self.url + "/health", 180, self.proc, self.log)
        except Exception:
            self.stop()
            raise

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, 15)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait()


class SlowProxy:
    """A forwarding HTTP proxy on a free loopback port in front of a real server, that holds
    the requests whose path contains one of `delays`' keys for that many seconds before passing
    them on (a store that is slow to answer one kind of call, as a loaded server is), and answers
    503 without passing them on to those whose path contains one of `refuse` (a server that goes
    away between two calls), and to the first n requests whose body contains a key of
    `refuse_bodies` (n its value: one kind of write failing a few times, or always with
    `math.inf`); `refused` counts those refusals by key."""

    def __init__(
        self,
        target: str,
        delays: dict[str, float],
        refuse: tuple[str, ...] = (),
        refuse_bodies: dict[str, float] | None = None,
    ) -> None:
        import http.server
        import threading

        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _forward(self) -> None:
                for part, seconds in outer.delays.items():
                    if part in self.path:
                        time.sleep(seconds)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                if any(part in self.path for part in outer.refuse) or outer._refuse_body(body):
                    self.send_response(503)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                request = urllib.request.Request(target + self.path, data=body, headers=headers, method=self.command)
                try:
                    with urllib.request.urlopen(request, timeout=60) as answer:
                        status, payload, kind = answer.status, answer.read(), answer.headers.get("Content-Type")
                except urllib.error.HTTPError as exc:
                    status, payload, kind = exc.code, exc.read(), exc.headers.get("Content-Type")
                self.send_response(status)
                self.send_header("Content-Type", kind or "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _forward  # PUT: artifact uploads

            def log_message(self, *args) -> None:
                pass

        self.delays = dict(delays)
        self.refuse = tuple(refuse)
        self.refuse_bodies = dict(refuse_bodies or {})
        self.refused = dict.fromkeys(self.refuse_bodies, 0)
        self._lock = threading.Lock()
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()

    def _refuse_body(self, body: bytes | None) -> bool:
        """Is this request one of the first n with a `refuse_bodies` key in its body (counted)?"""
        if not body:
            return False
        with self._lock:
            for key, times in self.refuse_bodies.items():
                if key.encode() in body and self.refused[key] < times:
                    self.refused[key] += 1
                    return True
        return False

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


class Postgres:
    """A throw-away PostgreSQL cluster on a free loopback port (trust auth, loopback only).
    PostgreSQL refuses to run as root: as root, it runs as the `postgres` system user."""

    def __init__(self) -> None:
        initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
        if not (initdb and pg_ctl):
            raise FileNotFoundError(f"PostgreSQL is not installed: {INSTALL_HINT}")
        self.pg_ctl = pg_ctl
        self.root = tempfile.mkdtemp(prefix="nnaudit-pg-")
        self.data = os.path.join(self.root, "data")
        self.port = free_port()
        self.prefix: list[str] = []
        if os.geteuid() == 0:
            import pwd

            try:
                user = pwd.getpwnam("postgres")
            except KeyError:
                raise FileNotFoundError(
                    "running as root and there is no `postgres` user to run PostgreSQL as"
                ) from None
            os.chmod(self.root, 0o755)
            os.chown(self.root, user.pw_uid, user.pw_gid)
            self.prefix = ["runuser", "-u", "postgres", "--"]
        self._run([initdb, "-D", self.data, "-U", "postgres", "--auth=trust", "-E", "UTF8"])
        log = os.path.join(self.root, "pg.log")
        self._run(
            [
                pg_ctl,
                "-D",
                self.data,
                "-l",
                log,
                "-w",
                "-t",
                "60",
                "-o",
                f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off",
                "start",
            ]
        )
        self.started = True

    def _run(self, cmd: list[str]) -> None:
        res = subprocess.run(self.prefix + cmd, capture_output=True, text=True, cwd=self.root)
        if res.returncode != 0:
            raise RuntimeError(f"{os.path.basename(cmd[0])} failed: {(res.stderr or res.stdout)[-1500:]}")

    def create_database(self, name: str) -> str:
        """A new empty database; returns its SQLAlchemy URI (psycopg2 driver)."""
        import psycopg2

        con = psycopg2.connect(host="127.0.0.1", port=self.port, user="postgres", dbname="postgres")
        con.autocommit = True
        with con.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        con.close()
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        if getattr(self, "started", False):
            subprocess.run(
                self.prefix + [self.pg_ctl, "-D", self.data, "-m", "fast", "-w", "stop"],
                capture_output=True,
                cwd=self.root,
            )
            self.started = False
        shutil.rmtree(self.root, ignore_errors=True)


def chromium_path() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None
