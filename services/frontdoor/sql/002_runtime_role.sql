-- Least privilege (docs/security.md): the front door runs as stafet_frontdoor, which may
-- read and add to the ids of the events it accepted, and nothing else.
GRANT SELECT, INSERT ON frontdoor_events TO stafet_frontdoor;
