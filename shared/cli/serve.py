"""`stafet serve NAME`: run one service in the foreground (the image's service command).

The process becomes `python -m faststream run services.NAME.app:app` (exec, not a child),
so the service receives SIGTERM from the container runtime itself and shuts down
gracefully within FastStream's graceful timeout.
"""

from __future__ import annotations

import os
import sys
from enum import StrEnum
from typing import Annotated

import typer

app = typer.Typer()


class Service(StrEnum):
    ingest = "ingest"
    verifier = "verifier"
    ledger = "ledger"


@app.command("serve")
def serve(name: Annotated[Service, typer.Argument(help="The service to run")]) -> None:
    """Run a service (ingest, verifier or ledger); settings from the environment."""
    module = f"services.{name.value}.app:app"
    os.execv(sys.executable, [sys.executable, "-m", "faststream", "run", module])  # noqa: S606 - a fixed module
