"""Pure rules: pricing, problem field paths, request fingerprints, tokens, settings."""

import sys
import unicodedata
import uuid

import pytest
from pydantic import ValidationError

from orders.access import access_token_for, hash_access_token
from orders.api.config import ApiSettings
from orders.api.problems import field_path
from orders.api.schemas import NOT_PRINTABLE, printable
from orders.idempotency import request_hash
from orders.payments import InvalidPaymentToken, PaymentDeclined, SandboxGateway, token_fingerprint
from orders.pricing import (
    CatalogPrice,
    OrderLimits,
    PricingError,
    check_cart,
    price_order,
    tax_on,
)

CATALOG = {
    "MUG": CatalogPrice("Mug", 1_450, "EUR"),
    "PEN": CatalogPrice("Pen", 333, "EUR"),
    "USD-TEE": CatalogPrice("Tee", 2_000, "USD"),
}


@pytest.mark.parametrize(
    ("subtotal", "bps", "tax"),
    [
        (0, 2_000, 0),
        (4_100, 2_000, 820),
        (333, 2_000, 67),
        (1, 2_000, 0),
        (3, 2_000, 1),
        (999, 0, 0),
    ],
)
def test_tax_rounds_half_up_in_minor_units(subtotal, bps, tax):
    assert tax_on(subtotal, bps) == tax


def test_prices_come_from_the_catalog():
    priced = price_order([("MUG", 2), ("PEN", 3)], "EUR", CATALOG, 2_000)
    assert [line.line_total for line in priced.lines] == [2_900, 999]
    assert (priced.subtotal, priced.tax, priced.total) == (3_899, 780, 4_679)


@pytest.mark.parametrize(
    ("lines", "currency", "field"),
    [
        ([("NOPE", 1)], "EUR", "lines[0].sku"),
        ([("MUG", 1), ("USD-TEE", 1)], "EUR", "currency"),
    ],
)
def test_pricing_refuses_what_the_catalog_does_not_sell(lines, currency, field):
    with pytest.raises(PricingError) as error:
        price_order(lines, currency, CATALOG, 2_000)
    assert error.value.field == field


@pytest.mark.parametrize(
    ("lines", "field"),
    [
        ([("A", 1)] * 3, "lines[1].sku"),
        ([("A", 1), ("B", 11)], "lines[1].quantity"),
        ([(str(i), 1) for i in range(6)], "lines"),
    ],
)
def test_cart_limits(lines, field):
    with pytest.raises(PricingError) as error:
        check_cart(lines, OrderLimits(max_lines=5, max_quantity=10))
    assert error.value.field == field


def test_field_paths_read_like_the_json():
    assert field_path(("body", "lines", 0, "sku")) == "lines[0].sku"
    assert field_path(("body", "customer", "email")) == "customer.email"
    assert field_path(("header", "Idempotency-Key")) == "Idempotency-Key"
    assert field_path(("body",)) == "body"


def test_request_hash_ignores_key_order_but_not_values():
    assert request_hash({"a": 1, "b": [1, 2]}) == request_hash({"b": [1, 2], "a": 1})
    assert request_hash({"a": 1}) != request_hash({"a": 2})


def test_access_tokens_are_per_order_and_per_secret():
    order = uuid.uuid4()
    token = access_token_for(order, "s1")
    assert token == access_token_for(order, "s1")
    assert token != access_token_for(uuid.uuid4(), "s1")
    assert token != access_token_for(order, "s2")
    assert len(hash_access_token(token)) == 64


def test_the_token_fingerprint_does_not_reveal_the_token():
    fingerprint = token_fingerprint("tok_visa", "secret")
    assert "tok_visa" not in fingerprint
    assert fingerprint == token_fingerprint("tok_visa", "secret")


async def test_sandbox_gateway_speaks_stripe_test_tokens():
    gateway = SandboxGateway()
    auth = await gateway.authorize(
        token="tok_visa", amount=100, currency="EUR", idempotency_key="k"
    )
    assert (auth.card_brand, auth.card_last4, auth.amount) == ("visa", "4242", 100)
    again = await gateway.authorize(
        token="tok_visa", amount=100, currency="EUR", idempotency_key="k"
    )
    assert again == auth
    with pytest.raises(PaymentDeclined) as declined:
        await gateway.authorize(
            token="tok_chargeDeclined", amount=100, currency="EUR", idempotency_key="k2"
        )
    assert declined.value.code == "card_declined"
    with pytest.raises(InvalidPaymentToken):
        await gateway.authorize(token="tok_nope", amount=100, currency="EUR", idempotency_key="k3")


def test_production_refuses_placeholder_secrets():
    with pytest.raises(ValidationError, match="SECRET_KEY"):
        ApiSettings(environment="production", ops_api_key="ops-key-from-a-vault")
    with pytest.raises(ValidationError, match="OPS_API_KEY"):
        ApiSettings(environment="production", secret_key="s3cr3t-from-a-vault")
    real = ApiSettings(environment="production", secret_key="s3cr3t", ops_api_key="0ps-key")
    assert real.secret_key == "s3cr3t"


def test_printable_refuses_exactly_unicodes_control_characters_and_lone_surrogates():
    # Every code point: the regular expression against Unicode's own categories (Cc and Cs).
    refused = [
        code for code in range(sys.maxunicode + 1) if NOT_PRINTABLE.search(chr(code)) is not None
    ]
    expected = [
        code
        for code in range(sys.maxunicode + 1)
        if unicodedata.category(chr(code)) in ("Cc", "Cs")
    ]
    assert refused == expected
    assert printable("Grüße, 東京 ✓") == "Grüße, 東京 ✓"
    with pytest.raises(ValueError, match="control characters"):
        printable("line\nbreak")
