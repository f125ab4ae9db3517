"""Where a child lives on a day, as far as the clearing house knows: for national figures
per municipality (docs/tenancy.md, "National figures").

The CPR register's moves (`residence` facts, reported only by an institution of kind
`cpr_register`) say it; where none is known on or before the day, the municipality of the
institution the child most recently started at (on or before the day, ended or not) stands
in for it: a child goes to daycare and school where it lives, mostly. None when neither
is known. Pure: the timeline is the verifier's fold, the institutions' municipalities come
from the registry.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from shared.domain.contracts.evaluation import residence_on
from shared.domain.contracts.timeline import SubjectTimeline


def home_on(timeline: SubjectTimeline, day: dt.date, municipality_of: Mapping[str, str]) -> str | None:
    """The municipality `timeline`'s subject lived in on `day` (see the module's docstring)."""
    resident = residence_on(timeline, day)
    if resident is not None:
        return resident
    stays = [r for r in timeline.registrations if r.start <= day and municipality_of.get(r.institution)]
    if not stays:
        return None
    latest = max(stays, key=lambda r: (r.start, r.institution))
    return municipality_of[latest.institution]
