"""``manage.py run_embedded`` (what ``make run`` calls): the whole platform on one machine.

Starts an MLflow server on a SQLite store with local artifacts (so its UI is there too),
migrates, seeds the demo, then runs the web server and a Celery worker (with beat) on
the embedded broker. Ctrl-C stops everything it started; if one process dies, the rest
are stopped too.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


class Command(BaseCommand):
    help = "Run MLflow, the web server and a worker on the embedded defaults (make run)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
        parser.add_argument("--mlflow-port", type=int, default=int(os.environ.get("MLFLOW_PORT", "5000")))
        parser.add_argument("--gateway-port", type=int, default=int(os.environ.get("GATEWAY_PORT", "8001")))
        parser.add_argument("--no-seed", action="store_true", help="do not seed the demo")

    def handle(self, *args: Any, **options: Any) -> None:
        self.children: list[tuple[str, subprocess.Popen]] = []
        self.demo: subprocess.Popen | None = None
        var = Path(settings.VAR_DIR)
        logs = var / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        # Short monitoring windows, so the demo's drift alert fires within a minute or two.
        env.setdefault("MODELGATE_MONITOR_WINDOW_SECONDS", "20")
        env.setdefault("MODELGATE_MONITOR_SECONDS", "10")
        signal.signal(signal.SIGTERM, _interrupt)
        signal.signal(signal.SIGINT, _interrupt)
        try:
            if "MLFLOW_TRACKING_URI" not in os.environ:
                env["MLFLOW_TRACKING_URI"] = self._start_mlflow(var, logs, options["mlflow_port"], env)
            env["MLFLOW_UI_URL"] = env.get("MLFLOW_UI_URL", env["MLFLOW_TRACKING_URI"])
            if not _port_free(options["port"]):
                raise CommandError(f"port {options['port']} is taken; set PORT to another one")
            if not _port_free(options["gateway_port"]):
                raise CommandError(f"port {options['gateway_port']} is taken; set GATEWAY_PORT to another one")
            self._run_once("migrate", [sys.executable, "manage.py", "migrate", "--noinput"], env)
            token = None
            if not options["no_seed"]:
                token_file = var / "demo-token"
                self._run_once("seed", [sys.executable, "manage.py", "seed_demo", "--token-file", str(token_file)], env)
                token = token_file.read_text().strip()
            self._spawn(
                "worker",
                [
                    sys.executable,
                    "manage.py",
                    "job_worker",
                    "--name",
                    "embedded",
                    # Replicas of deployments are long-running jobs: room for them and for training.
                    "--slots",
                    "4",
                    "--scheduler",
                    "--beat",
                    str(var / "celerybeat-schedule"),
                ],
                env,
                logs / "worker.log",
            )
            url = f"http://127.0.0.1:{options['port']}"
            self._spawn(
                "web",
                [
                    sys.executable,
                    "-m",
                    "gunicorn",
                    "config.wsgi:application",
                    "--bind",
                    f"127.0.0.1:{options['port']}",
                    "--workers",
                    "2",
                    "--threads",
                    "4",
                    "--timeout",
                    "120",
                    "--access-logfile",
                    "-",
                ],
                env,
                logs / "web.log",
            )
            self._wait_http(f"{url}/api/v1/health", "web server")
            gateway = f"http://127.0.0.1:{options['gateway_port']}"
            self._spawn(
                "gateway",
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "serving.app:app",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(options["gateway_port"]),
                    "--no-access-log",
                    "--loop",
                    "uvloop",
                    "--http",
                    "httptools",
                ],
                env,
                logs / "gateway.log",
            )
            self._wait_http(f"{gateway}/serve/-/health", "serving gateway")
            env["MODELGATE_GATEWAY_URL"] = gateway
            if token:
                env["MODELGATE_DEMO_TOKEN"] = token
            self._banner(url, env["MLFLOW_UI_URL"], token, logs, gateway)
            if not options["no_seed"]:
                # The demo loop talks to the worker through the platform; its output goes
                # to this terminal, and it ends by itself (or is stopped with the rest).
                self.demo = subprocess.Popen([sys.executable, "manage.py", "demo_loop"], env=env, cwd=settings.BASE_DIR)
            while True:
                if self.demo is not None and self.demo.poll() is not None:
                    if self.demo.returncode != 0:
                        self.stdout.write(
                            f"the demo loop failed (status {self.demo.returncode}); the platform keeps running"
                        )
                    self.demo = None
                for name, process in self.children:
                    if process.poll() is not None:
                        raise CommandError(f"{name} exited with status {process.returncode}; see {logs}/{name}.log")
                time.sleep(1)
        except KeyboardInterrupt:
            self.stdout.write("\nstopping…")
        finally:
            self._stop_all()

    def _start_mlflow(self, var: Path, logs: Path, port: int, env: dict[str, str]) -> str:
        if not _port_free(port):
            raise CommandError(f"port {port} is taken; set MLFLOW_PORT to another one")
        artifacts = var / "mlartifacts"
        artifacts.mkdir(exist_ok=True)
        self._spawn(
            "mlflow",
            [
                sys.executable,
                "-m",
                "mlflow",
                "server",
                "--backend-store-uri",
                f"sqlite:///{var / 'mlflow-server.sqlite3'}",
                "--default-artifact-root",
                artifacts.as_uri(),
                "--no-serve-artifacts",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                "1",
            ],
            env,
            logs / "mlflow.log",
        )
        uri = f"http://127.0.0.1:{port}"
        self._wait_http(f"{uri}/health", "MLflow server", timeout=180)
        return uri

    def _spawn(self, name: str, command: list[str], env: dict[str, str], log: Path) -> None:
        handle = log.open("a")
        process = subprocess.Popen(
            command, env=env, stdout=handle, stderr=subprocess.STDOUT, cwd=settings.BASE_DIR, start_new_session=True
        )
        self.children.append((name, process))
        self.stdout.write(f"started {name} (pid {process.pid}), log: {log}")

    def _run_once(self, name: str, command: list[str], env: dict[str, str]) -> None:
        self.stdout.write(f"{name}…")
        result = subprocess.run(command, env=env, cwd=settings.BASE_DIR, capture_output=True, text=True)
        if result.returncode != 0:
            raise CommandError(f"{name} failed:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}")
        for line in result.stdout.strip().splitlines()[:-1] if name == "seed" else []:
            self.stdout.write(f"  {line}")

    def _wait_http(self, url: str, what: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(process.poll() is not None for _, process in self.children):
                break
            try:
                if requests.get(url, timeout=2).status_code < 500:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.5)
        raise CommandError(f"{what} did not answer at {url}")

    def _banner(self, url: str, mlflow_url: str, token: str | None, logs: Path, gateway: str) -> None:
        lines = [
            "",
            f"ModelGate is running at {url}",
            f"  API:        {url}/api/v1/   (docs at {url}/api/docs/)",
            f"  Gateway:    {gateway}/serve/<model>/invocations   (MLflow's scoring protocol)",
            f"  Admin:      {url}/admin/",
            f"  MLflow UI:  {mlflow_url}",
        ]
        if token:
            lines += [
                "  Logins:     admin / modelgate-admin, alice / modelgate-alice (developer), bob / modelgate-bob (approver)",
                f"  API token:  {token}",
                f"  Try:        curl -H 'Authorization: Bearer {token}' {url}/api/v1/models/",
            ]
        lines += [f"  Logs:       {logs}", "Press Ctrl-C to stop.", ""]
        self.stdout.write("\n".join(lines))

    def _stop_all(self) -> None:
        # A second Ctrl-C while stopping must not leave orphans behind.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        # Stopped by a signal to this process alone (a supervisor's SIGTERM, not a
        # terminal's Ctrl-C to the whole group), the demo loop would outlive the platform
        # and go on writing to its database.
        if self.demo is not None and self.demo.poll() is None:
            self.demo.terminate()
            try:
                self.demo.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.demo.kill()
        for _, process in reversed(self.children):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for name, process in reversed(self.children):
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                self.stdout.write(f"killed {name}")
