"""The catalog as checkout reads it: each SKU's name, price and currency.

`read_prices` asks the database. `PriceBook` keeps what it read, in the API process, for as long
as something vouches that the catalog has not changed since: on PostgreSQL a trigger on `product`
raises the `catalog` notification for every statement that adds, changes or removes products
(migrations: catalog_notify), and the API's LISTEN connection (orders.api.live) clears the book
when it arrives. While that connection is down the book is not trusted and every checkout reads,
as it always does on SQLite. A price changed in the database reaches checkouts when its
notification reaches the API, a few milliseconds after the commit: a checkout's price was always
read some milliseconds before its order is written, while the card is authorized."""

import time
from collections.abc import Callable, Sequence

from sqlmodel import Session, select

from orders.models import Product, table
from orders.pricing import CatalogPrice


def read_prices(session: Session, skus: Sequence[str]) -> dict[str, CatalogPrice]:
    """The catalog's price of each SKU it knows."""
    products = table(Product)
    rows = session.connection().execute(
        select(products.c.sku, products.c.name, products.c.unit_price, products.c.currency).where(
            products.c.sku.in_(skus)
        )
    )
    return {sku: CatalogPrice(name, price, currency) for sku, name, price, currency in rows}


Read = Callable[[Session, Sequence[str]], dict[str, CatalogPrice]]


class PriceBook:
    """`read_prices`, answered from memory while the book is trusted.

    Used from one event loop only (the API process's): a read runs through SQLAlchemy's bridge and
    may yield to the loop, where `changed` can run meanwhile; what such a read found is returned,
    not kept, since it may predate the change. Unknown SKUs are never kept: a cart that names one
    is refused, and a product added later is found by the next read. `max_age_s` bounds how long
    anything is kept even if a notification were lost on a connection that looks alive."""

    def __init__(
        self, read: Read = read_prices, max_skus: int = 10_000, max_age_s: float = 60.0
    ) -> None:
        self.read = read
        self.max_skus = max_skus
        self.max_age_s = max_age_s
        self._prices: dict[str, CatalogPrice] = {}
        self._generation = 0
        self._since = time.monotonic()
        self._trusted = False

    @property
    def trusted(self) -> bool:
        return self._trusted

    def prices(self, session: Session, skus: Sequence[str]) -> dict[str, CatalogPrice]:
        if self._trusted and time.monotonic() - self._since > self.max_age_s:
            self.changed()
        kept = {sku: self._prices[sku] for sku in skus if sku in self._prices}
        if len(kept) == len(set(skus)):
            return kept
        generation = self._generation
        found = self.read(session, skus)
        if self._trusted and generation == self._generation:
            if len(self._prices) + len(found) > self.max_skus:
                self.changed()
            self._prices.update(found)
        return found

    def changed(self) -> None:
        """The catalog changed, or may have: forget what was kept, and what a read under way
        will find."""
        self._prices = {}
        self._generation += 1
        self._since = time.monotonic()

    def trust(self, trusted: bool) -> None:
        """Trusted while a LISTEN connection is up: whatever changed before it was is forgotten."""
        self._trusted = trusted
        self.changed()
