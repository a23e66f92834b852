"""The price book: what it keeps, when it reads, and what it forgets (orders.catalog)."""

from collections.abc import Callable, Sequence
from typing import Any

from orders.catalog import PriceBook
from orders.pricing import CatalogPrice

CATALOG = {
    "MUG-001": CatalogPrice("Mug", 1_450, "EUR"),
    "TEE-001": CatalogPrice("Tee", 1_200, "EUR"),
}
SESSION: Any = object()  # the reader below never touches it


class Reader:
    """Stands in for the database: answers from CATALOG, counts reads, can act mid-read."""

    def __init__(self, during: Callable[[], None] = lambda: None) -> None:
        self.reads: list[list[str]] = []
        self.during = during

    def __call__(self, _session: Any, skus: Sequence[str]) -> dict[str, CatalogPrice]:
        self.reads.append(list(skus))
        self.during()
        return {sku: CATALOG[sku] for sku in skus if sku in CATALOG}


def trusted_book(reader: Reader, **options: Any) -> PriceBook:
    book = PriceBook(reader, **options)
    book.trust(True)
    return book


def test_an_untrusted_book_reads_every_time():
    reader = Reader()
    book = PriceBook(reader)

    for _ in range(3):
        assert book.prices(SESSION, ["MUG-001"]) == {"MUG-001": CATALOG["MUG-001"]}

    assert len(reader.reads) == 3


def test_a_trusted_book_reads_only_what_it_does_not_hold():
    reader = Reader()
    book = trusted_book(reader)

    book.prices(SESSION, ["MUG-001"])
    book.prices(SESSION, ["MUG-001"])
    both = book.prices(SESSION, ["MUG-001", "TEE-001"])
    book.prices(SESSION, ["TEE-001", "MUG-001"])

    assert both == CATALOG
    assert reader.reads == [["MUG-001"], ["MUG-001", "TEE-001"]]


def test_an_unknown_sku_is_read_again_every_time():
    reader = Reader()
    book = trusted_book(reader)

    for _ in range(2):
        assert book.prices(SESSION, ["MUG-001", "NOPE"]) == {"MUG-001": CATALOG["MUG-001"]}

    assert len(reader.reads) == 2


def test_a_change_forgets_what_was_kept():
    reader = Reader()
    book = trusted_book(reader)
    book.prices(SESSION, ["MUG-001"])

    book.changed()
    book.prices(SESSION, ["MUG-001"])

    assert len(reader.reads) == 2


def test_what_a_read_found_is_not_kept_when_a_change_arrived_during_it():
    book: PriceBook
    reader = Reader(during=lambda: book.changed())
    book = trusted_book(reader)

    assert book.prices(SESSION, ["MUG-001"]) == {"MUG-001": CATALOG["MUG-001"]}
    reader.during = lambda: None
    book.prices(SESSION, ["MUG-001"])
    book.prices(SESSION, ["MUG-001"])

    assert len(reader.reads) == 2  # the first read's answer was not kept; the second's was


def test_losing_trust_forgets_and_keeps_nothing_more():
    reader = Reader()
    book = trusted_book(reader)
    book.prices(SESSION, ["MUG-001"])

    book.trust(False)
    book.prices(SESSION, ["MUG-001"])
    book.prices(SESSION, ["MUG-001"])

    assert len(reader.reads) == 3


def test_nothing_is_kept_longer_than_its_age_limit():
    reader = Reader()
    book = trusted_book(reader, max_age_s=0.0)

    book.prices(SESSION, ["MUG-001"])
    book.prices(SESSION, ["MUG-001"])

    assert len(reader.reads) == 2


def test_a_full_book_starts_over():
    reader = Reader()
    book = trusted_book(reader, max_skus=1)
    book.prices(SESSION, ["MUG-001"])

    book.prices(SESSION, ["TEE-001"])  # would hold two: forgets MUG-001, keeps TEE-001
    book.prices(SESSION, ["TEE-001"])
    book.prices(SESSION, ["MUG-001"])

    assert reader.reads == [["MUG-001"], ["TEE-001"], ["MUG-001"]]
