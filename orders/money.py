"""Amounts as people read them. Amounts are kept in minor units (cents); how many of those make a
unit, and how a locale writes the result, is CLDR's knowledge, by Babel."""

from decimal import Decimal

from babel.numbers import format_currency, get_currency_precision


def format_money(minor: int, currency: str, locale: str = "en_GB") -> str:
    """(4920, "EUR") -> "€49.20"; (4920, "JPY") -> "JP¥4,920" (no decimals); KWD has three."""
    amount = Decimal(minor).scaleb(-get_currency_precision(currency))
    return str(format_currency(amount, currency, locale=locale))
