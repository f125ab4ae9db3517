"""`stafet keys new`: the keys production needs (docs/privacy.md, docs/security.md)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated

import typer

from cli.errors import fail

app = typer.Typer(help="Keys for production.", no_args_is_help=True)

SIGNER_SHAPE = re.compile(r"^(institution|operator|finance|service):[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def _write(out: Path, files: dict[str, str]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name in files:
        if (out / name).exists():
            fail(f"{out / name} exists; refusing to overwrite a key")
    for name, text in files.items():
        path = out / name
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600 if name.endswith(".key") else 0o644)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(text + "\n")
        typer.echo(f"wrote {path}")


def _ingest_keys(out: Path) -> None:
    import secrets

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    raw = serialization.Encoding.Raw
    private = X25519PrivateKey.generate()
    _write(out, {
        "ingest-sealing.key": private.private_bytes(raw, serialization.PrivateFormat.Raw,
                                                    serialization.NoEncryption()).hex(),
        "ingest-sealing.pub": private.public_key().public_bytes(raw, serialization.PublicFormat.Raw).hex(),
        "pseudonym.key": secrets.token_hex(32),
    })


def _signing_keys(out: Path, signer: str) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from shared.domain.signing import key_id_of, private_hex, public_bytes

    role, _, name = signer.partition(":")
    private = Ed25519PrivateKey.generate()
    public_hex = public_bytes(private.public_key()).hex()
    stem = f"{role}-{name}"
    _write(out, {f"{stem}.key": private_hex(private), f"{stem}.pub": public_hex})
    typer.echo(f"key id {key_id_of(private.public_key())}")
    if role == "institution":
        typer.echo(f"trust it: in the institution registry, under {name}: keys: [{public_hex}]")
    else:
        typer.echo(f"trust it: in TRUSTED_KEYS_FILE, under {role}: {name}: [{public_hex}]")
    typer.echo(f"sign with it: SIGNING_KEY_FILE={out / (stem + '.key')} (or --signing-key)")


@app.command("new")
def keys_new(
    out: Annotated[Path, typer.Option(help="Folder to write the keys into")] = Path("keys"),
    signer: Annotated[str | None, typer.Option(
        help="Make an Ed25519 signing key pair for ROLE:NAME, ROLE one of institution, "
             "operator, finance, service (e.g. institution:alsskolen, service:ledger)")] = None,
) -> None:
    """Without --signer: ingest's sealing key pair and a pseudonym key (give ingest
    `ingest-sealing.key` and `pseudonym.key`; give publishers `ingest-sealing.pub`).
    With --signer: a signing key pair; the private key stays with the signer, the public
    key goes where receivers trust it. Private key files are readable by the owner only."""
    if signer is None:
        _ingest_keys(out)
        return
    if not SIGNER_SHAPE.match(signer):
        fail(f"--signer {signer!r}: expected ROLE:NAME, ROLE one of institution, operator, finance, service")
    _signing_keys(out, signer)
