"""What `stafet ledger rebuild` and `stafet verifier rebuild` check, once `--yes` was
given, before emptying a service's tables: the log still starts at offset 0 and the
service is stopped. A refusal is one `error:` line and exit code 2; `--yes` does not
override it."""

from __future__ import annotations

import asyncio

from cli.errors import fail
from shared.platform.kafka import rebuild_refusals
from shared.platform.settings import Settings


def refuse_unsafe_rebuild(settings: Settings, *, topic: str, groups: tuple[str, ...], principal: str) -> None:
    try:
        problems = asyncio.run(rebuild_refusals(settings.kafka_bootstrap_servers, topic, groups,
                                                principal=principal))
    except Exception as error:  # noqa: BLE001 - any broker failure is reported, not traced
        fail(f"cannot check whether a rebuild is safe ({type(error).__name__}: {error}); nothing changed")
    if problems:
        fail("; ".join(problems) + "; nothing changed")
