"""`stafet keys new`: the keys production needs (docs/privacy.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from shared.cli.errors import fail

app = typer.Typer(help="Keys for production.", no_args_is_help=True)



@app.command("new")
def keys_new(out: Annotated[Path, typer.Option(help="Folder to write the keys into")] = Path("keys")) -> None:
    """Make ingest's sealing key pair and a pseudonym key (files readable by the owner only).
    Give ingest `ingest-sealing.key` and `pseudonym.key`; give publishers `ingest-sealing.pub`."""
    import os
    import secrets

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    raw = serialization.Encoding.Raw
    private = X25519PrivateKey.generate()
    files = {
        "ingest-sealing.key": private.private_bytes(raw, serialization.PrivateFormat.Raw,
                                                    serialization.NoEncryption()).hex(),
        "ingest-sealing.pub": private.public_key().public_bytes(raw, serialization.PublicFormat.Raw).hex(),
        "pseudonym.key": secrets.token_hex(32),
    }
    out.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        path = out / name
        if path.exists():
            fail(f"{path} exists; refusing to overwrite a key")
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600 if name.endswith(".key") else 0o644)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(text + "\n")
        typer.echo(f"wrote {path}")
