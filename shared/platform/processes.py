"""Running the services as real OS processes: for `make demo`, the end-to-end tests
and the benchmark. A killed process is killed for real (SIGKILL), like a crashed pod."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from shared.platform.settings import REPO_ROOT

SERVICES = ("ingest", "verifier", "ledger")
# The HTTP front door is an ASGI app served by uvicorn, on FRONT_DOOR_PORT (default 8080).
FRONT_DOOR = "frontdoor"
STOP_TIMEOUT_S = 20.0


@dataclass
class ServiceProcess:
    name: str
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self) -> None:
        if self.name not in (*SERVICES, FRONT_DOOR):
            raise ValueError(f"unknown service {self.name!r}; one of {', '.join((*SERVICES, FRONT_DOOR))}")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "faststream", "run", f"services.{self.name}.app:app"]
        if self.name == FRONT_DOOR:
            command = [sys.executable, "-m", "uvicorn", "services.frontdoor.app:app", "--host", "127.0.0.1",
                       "--port", self.env.get("FRONT_DOOR_PORT", "8080"), "--no-access-log"]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                command,
                cwd=REPO_ROOT, env={**os.environ, **self.env}, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True,
            )

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: no shutdown hooks, no final commit, exactly like a crash."""
        if self.process is not None and self.running():
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process is None or not self.running():
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.kill()


def start_services(env: dict[str, str], log_dir: Path,
                   names: tuple[str, ...] = SERVICES) -> dict[str, ServiceProcess]:
    services = {name: ServiceProcess(name, env, log_dir / f"{name}.log") for name in names}
    for service in services.values():
        service.start()
    return services


def stop_services(services: dict[str, ServiceProcess]) -> None:
    for service in services.values():
        service.stop()
