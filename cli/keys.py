"""`stafet keys new`: the keys production needs (docs/privacy.md, docs/security.md)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any

import typer

from cli.errors import fail

app = typer.Typer(rich_markup_mode=None, help="Keys for production.", no_args_is_help=True)

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


# ---- keys that end: the signed key list and the signed revocation list --------------
# (shared/domain/key_lists.py). Both are signed by an operator's root key, which every
# receiver pins in TRUST_ROOT_KEYS; in development operator:dev's well-known key is one.

def _root_signer(signing_key: Path | None) -> Any:
    from shared.platform.settings import Settings
    from shared.platform.trust import DEVELOPMENT_OPERATOR, ConfigurationError, record_signer, trust_roots

    settings = Settings()
    try:
        signer = record_signer(settings, DEVELOPMENT_OPERATOR, signing_key)
        roots = trust_roots(settings)
    except ConfigurationError as error:
        fail(str(error))
    if signer.key_id not in roots:
        fail(f"the signing key {signer.key_id} is not a trust root: add its public key to TRUST_ROOT_KEYS")
    return signer, roots


def _write_signed(out: Path, content: dict[str, Any]) -> None:
    import yaml

    temporary = out.with_name(out.name + ".tmp")
    temporary.write_text(yaml.safe_dump(content, sort_keys=False), encoding="utf-8")
    temporary.replace(out)  # whole or not at all: a receiver never reads half a list


def _now() -> Any:
    import datetime as dt

    return dt.datetime.now(dt.UTC).replace(microsecond=0)


@app.command("sign-list")
def keys_sign_list(
    source: Annotated[Path, typer.Argument(help="YAML with `keys:`, each {principal, public_key, not_before?, not_after?}")],
    out: Annotated[Path, typer.Option(help="Where to write the signed key list (TRUSTED_KEYS_FILE)")],
    signing_key: Annotated[Path | None, typer.Option(help="An operator's root key (TRUST_ROOT_KEYS)")] = None,
) -> None:
    """Sign a key list: the keys receivers trust, each with an optional window. A key
    retired by `not_after` keeps verifying what it signed before then."""
    import yaml
    from pydantic import ValidationError

    from shared.domain.key_lists import KeyList, sign_document

    signer, _ = _root_signer(signing_key)
    try:
        data = yaml.safe_load(source.read_text(encoding="utf-8")) or {}
        document = KeyList(issued_at=_now(), keys=tuple(data.get("keys") or ()))
    except OSError as error:
        fail(f"{source}: {error.strerror}")
    except (yaml.YAMLError, AttributeError) as error:
        fail(f"{source}: not YAML with `keys:`: {error}")
    except ValidationError as error:
        first = error.errors()[0]
        fail(f"{source}: {'.'.join(str(p) for p in first['loc'])}: {first['msg']}")
    _write_signed(out, sign_document(document, signer.key))
    typer.echo(f"signed {len(document.keys)} key(s) as {signer.key_id} into {out}")


@app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="The key id to revoke (ed25519:...)")],
    reason: Annotated[str, typer.Option(help="Why (kept in the list)")],
    revocations: Annotated[Path, typer.Option("--list", help="The revocation list (REVOKED_KEYS_FILE); created if absent")],
    since: Annotated[str | None, typer.Option(
        help="Refuse what the key signed from this moment (ISO 8601 with zone) on; default: everything")] = None,
    signing_key: Annotated[Path | None, typer.Option(help="An operator's root key (TRUST_ROOT_KEYS)")] = None,
) -> None:
    """Add a key to the signed revocation list: receivers refuse its records (all, or
    those stamped from --since on) as `revoked_key` once they load the list."""
    import yaml
    from pydantic import ValidationError

    from shared.domain.key_lists import DocumentError, Revocation, RevocationList, sign_document, verified_document

    signer, roots = _root_signer(signing_key)
    revoked: tuple[Revocation, ...] = ()
    if revocations.exists():
        try:
            revoked = verified_document(yaml.safe_load(revocations.read_text(encoding="utf-8")),
                                        RevocationList, roots).revoked
        except (DocumentError, yaml.YAMLError) as error:
            fail(f"{revocations}: not a valid signed revocation list, refusing to replace it: {error}")
    try:
        added = Revocation.model_validate({"key_id": key_id, "reason": reason, "since": since})
    except ValidationError as error:
        first = error.errors()[0]
        fail(f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}")
    document = RevocationList(issued_at=_now(), revoked=(*revoked, added))
    _write_signed(revocations, sign_document(document, signer.key))
    typer.echo(f"revoked {key_id} ({len(document.revoked)} in {revocations}); receivers refuse it once they "
               "restart with REVOKED_KEYS_FILE pointing there")
