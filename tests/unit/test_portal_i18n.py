"""The portal in Danish and English: every text translated, money and dates by locale."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from services.frontdoor.portal import i18n

PORTAL = Path(i18n.__file__).parent
METHODS = [("**.py", "python"), ("templates/**.html", "jinja2")]
OPTIONS = {"templates/**.html": {"extensions": "jinja2.ext.i18n"}}
KEYWORDS = {"_": None, "gettext": None, "N_": None, "gettext_": None}


def texts_in_the_portal() -> set[str]:
    found = set()
    for _, _, message, _, _ in extract_from_dir(PORTAL, METHODS, options_map=OPTIONS, keywords=KEYWORDS):
        found.add(message if isinstance(message, str) else message[0])
    return found


def test_every_text_of_the_pages_has_a_danish_translation() -> None:
    texts = texts_in_the_portal()
    assert len(texts) > 80  # the extraction found the templates and the code, not nothing
    with (i18n.LOCALE_DIR / "da" / "LC_MESSAGES" / "messages.po").open("rb") as source:
        catalog = read_po(source, locale="da")
    untranslated = sorted(t for t in texts if not (catalog.get(t) and catalog.get(t).string))
    assert untranslated == []
    stale = sorted(m.id for m in catalog if m.id and m.id not in texts)
    assert stale == [], "texts no page uses any more: remove them from the catalogue"


def test_the_danish_catalogue_is_compiled_and_english_is_the_source() -> None:
    translations = i18n.load_translations()
    assert translations["da"].gettext("Log in") == "Log ind"
    assert translations["da"].gettext("Statement for %(institution)s") % {"institution": "Alsskolen"} == \
        "Kontoudtog for Alsskolen"
    assert translations["en"].gettext("Log in") == "Log in"


def test_money_is_written_as_a_danish_and_an_english_reader_writes_it() -> None:
    assert i18n.money(134_233, "DKK", "da") == "1.342,33\xa0kr."
    assert i18n.money(134_233, "DKK", "en") == "DKK1,342.33"
    assert i18n.money(-5, "DKK", "da") == "-0,05\xa0kr."
    # Exact to the last øre at any size: no float on the way.
    assert i18n.money(123_456_789_012_345_678, "DKK", "da") == "1.234.567.890.123.456,78\xa0kr."
    assert i18n.money(100, "JPY", "en") == "JP¥100"  # no minor unit
    assert i18n.number(134_233, "DKK", "da") == "1342,33"
    assert i18n.number(-134_233, "DKK", "en") == "-1342.33"


def test_dates_and_shares_follow_the_language() -> None:
    assert i18n.day(dt.date(2023, 6, 23), "da") == "23. jun. 2023"
    assert i18n.day(dt.date(2023, 6, 23), "en") == "23 Jun 2023"
    assert i18n.month(dt.date(2023, 6, 1), "da") == "juni 2023"
    assert i18n.percent(1, 3, "da") == "33,33 %"
    assert i18n.percent(2, 3, "en") == "66.67 %"
    assert i18n.percent(1, 0, "en") == "–"


def test_danish_is_the_default_language() -> None:
    assert i18n.language_of(None) == "da"
    assert i18n.language_of("fr") == "da"
    assert i18n.language_of("en") == "en"
