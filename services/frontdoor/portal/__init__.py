"""The institutions' portal: an institution's people log in and read their statement.

Served by the front door under `/portal/` (server-rendered pages, Jinja2 templates, a
little htmx), Danish by default with an English switch. See services/frontdoor/README.md.
"""
