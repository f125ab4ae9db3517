"""Danish by default, English on request: gettext catalogues, money and dates by locale.

The page texts are written in English in the templates and the code (gettext's msgids);
`locale/da/LC_MESSAGES/messages.po` translates them to Danish. Babel reads the catalogue
and compiles it to gettext's binary form in memory when the front door starts, so no
compiled file is checked in or built separately; a unit test fails when a text in a
template or in the portal's code has no Danish translation (tests/unit/test_portal_i18n.py).

Amounts are integers in minor units; they are shown through Babel's CLDR data for the
reader's locale ("1.342,33 kr." in Danish, "DKK 1,342.33" in English), from an exact
Decimal, never a float.
"""

from __future__ import annotations

import datetime as dt
import gettext
import io
from decimal import Decimal
from pathlib import Path

from babel.dates import format_date
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_currency, format_decimal

from shared.domain.currency import minor_unit_exponent

LOCALE_DIR = Path(__file__).parent / "locale"
LANGUAGES = ("da", "en")
DEFAULT_LANGUAGE = "da"
_BABEL_LOCALES = {"da": "da_DK", "en": "en_GB"}


def load_translations() -> dict[str, gettext.NullTranslations]:
    """Per language, its compiled catalogue (English is the msgids themselves)."""
    found: dict[str, gettext.NullTranslations] = {"en": gettext.NullTranslations()}
    for language in LANGUAGES:
        po = LOCALE_DIR / language / "LC_MESSAGES" / "messages.po"
        if language == "en" or not po.is_file():
            continue
        with po.open("rb") as source:
            catalog = read_po(source, locale=language)
        compiled = io.BytesIO()
        write_mo(compiled, catalog)
        compiled.seek(0)
        found[language] = gettext.GNUTranslations(compiled)
    return found


def language_of(requested: str | None) -> str:
    return requested if requested in LANGUAGES else DEFAULT_LANGUAGE


def exact_amount(amount_minor: int, currency: str) -> Decimal:
    return Decimal(amount_minor).scaleb(-minor_unit_exponent(currency))


def money(amount_minor: int, currency: str, language: str) -> str:
    """An amount as a reader of `language` writes it, to the last minor unit."""
    return format_currency(exact_amount(amount_minor, currency), currency, locale=_BABEL_LOCALES[language],
                           currency_digits=True, decimal_quantization=False)


def number(amount_minor: int, currency: str, language: str) -> str:
    """The amount without its currency (CSV cells for a spreadsheet in that language)."""
    digits = minor_unit_exponent(currency)
    pattern = "0." + "0" * digits if digits else "0"
    return format_decimal(exact_amount(amount_minor, currency), format=pattern, locale=_BABEL_LOCALES[language],
                          decimal_quantization=True)


def day(value: dt.date, language: str) -> str:
    """A date as the reader writes it: 23. jun. 2023 / 23 Jun 2023."""
    return format_date(value, format="medium", locale=_BABEL_LOCALES[language])


def month(value: dt.date, language: str) -> str:
    return format_date(value, format="MMMM y", locale=_BABEL_LOCALES[language])


def percent(numerator: int, denominator: int, language: str) -> str:
    """A share as a percentage with two decimals (exact fraction, rounded half even)."""
    if denominator == 0:
        return "–"
    share = (Decimal(numerator) * 100 / Decimal(denominator)).quantize(Decimal("0.01"))
    return format_decimal(share, format="0.00", locale=_BABEL_LOCALES[language]) + " %"
