"""Where the subjects' facts come from: the verifier's event store (transitions per
subject), or events generated or exported as institutions send them. Either way the
result is the verifier's own fold, so an indicator measured live and one measured over
a what-if are the same computation."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence

from shared.domain.contracts.timeline import SubjectTimeline, fold
from shared.domain.events import Transition
from shared.domain.institutions import InstitutionRegistry
from shared.domain.pseudonym import DEVELOPMENT_KEY, birth_date_from_cpr, pseudonymise


def timelines_from_streams(streams: Mapping[str, Sequence[Transition]]) -> list[SubjectTimeline]:
    """The verifier's event store (`services.verifier.store.load_streams`) as timelines."""
    return [fold(subject, stream[0].birth_date, stream) for subject, stream in sorted(streams.items()) if stream]


def timelines_from_transitions(transitions: Iterable[Transition]) -> list[SubjectTimeline]:
    streams: dict[str, list[Transition]] = defaultdict(list)
    for transition in transitions:
        streams[transition.subject].append(transition)
    return timelines_from_streams(streams)


def transitions_from_generated(events: Iterable[Mapping[str, object]], registry: InstitutionRegistry,
                               key: bytes = DEVELOPMENT_KEY, key_id: str = "k1") -> list[Transition]:
    """Generated events (`cli.synthetic.population`) as the transitions ingest would admit.

    A shortcut for the synthetic municipality only (no sealing, no trust checks: the
    generator's events are valid by construction); the CPR number is pseudonymised here
    and goes no further than this function."""
    transitions = []
    for event in events:
        subject = event["subject"]
        assert isinstance(subject, Mapping)
        cpr = str(subject["cpr"])
        reporter = registry.get(str(event["reported_by"]))
        transitions.append(Transition.model_validate({
            "event_id": event["event_id"], "occurred_on": event["occurred_on"],
            "reported_by": event["reported_by"], "reporter_kind": reporter.kind if reporter else "unknown",
            "subject": pseudonymise(cpr, key, key_id), "birth_date": birth_date_from_cpr(cpr),
            "body": event["body"]}))
    return transitions
