"""`stafet serve NAME`: run one service in the foreground (the image's service command).

The process becomes `python -m faststream run services.NAME.app:app` (exec, not a child),
so the service receives SIGTERM from the container runtime itself and shuts down
gracefully within FastStream's graceful timeout. The HTTP front door is an ASGI app:
it becomes `python -m uvicorn services.frontdoor.app:app` on FRONT_DOOR_HOST (default
0.0.0.0) and FRONT_DOOR_PORT (default 8080), behind a TLS-terminating proxy, with its
/livez, /readyz and /metrics on HTTP_PORT (the image's 9090) and uvicorn's access log off
(the front door writes one line per request of its own).
"""

from __future__ import annotations

import os
import sys
from enum import StrEnum
from typing import Annotated

import typer

app = typer.Typer(rich_markup_mode=None, )


class Service(StrEnum):
    ingest = "ingest"
    verifier = "verifier"
    ledger = "ledger"
    frontdoor = "frontdoor"


@app.command("serve")
def serve(name: Annotated[Service, typer.Argument(help="The service to run")]) -> None:
    """Run a service (ingest, verifier, ledger or frontdoor); settings from the environment."""
    module = f"services.{name.value}.app:app"
    if name == Service.frontdoor:
        host, port = os.environ.get("FRONT_DOOR_HOST", "0.0.0.0"), os.environ.get("FRONT_DOOR_PORT", "8080")  # noqa: S104
        os.execv(sys.executable, [sys.executable, "-m", "uvicorn", module, "--host", host,  # noqa: S606
                                  "--port", port, "--no-access-log"])
    os.execv(sys.executable, [sys.executable, "-m", "faststream", "run", module])  # noqa: S606 - a fixed module
