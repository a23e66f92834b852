"""`make seed`: a sample catalog. Safe to run again: existing products keep their stock."""

from sqlalchemy import create_engine
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from orders.config import Settings
from orders.models import Product

CATALOG = [
    # sku, name, unit price in cents, stock on hand
    ("MUG-001", "Enamel camp mug", 1_450, 500),
    ("TEE-BLK-M", "Organic tee, black, M", 2_500, 300),
    ("TEE-BLK-L", "Organic tee, black, L", 2_500, 300),
    ("BAG-TOTE", "Canvas tote bag", 1_900, 200),
    ("NB-A5", "Dot-grid notebook A5", 1_200, 1_000),
    ("PEN-BRASS", "Brass pen", 3_900, 150),
    ("CAP-OLV", "Olive cap", 2_200, 120),
    ("POSTER-LTD", "Signed poster (limited)", 4_500, 5),
]


def seed(database_url: str) -> int:
    engine = create_engine(database_url)
    insert = sqlite_insert if engine.dialect.name == "sqlite" else pg_insert
    rows = [
        {"sku": sku, "name": name, "unit_price": price, "currency": "EUR", "stock_on_hand": stock}
        for sku, name, price, stock in CATALOG
    ]
    stmt = insert(Product).values(rows)
    stmt = stmt.on_conflict_do_update(
        index_elements=["sku"],
        set_={"name": stmt.excluded.name, "unit_price": stmt.excluded.unit_price},
    )
    with engine.begin() as connection:
        connection.execute(stmt)
    engine.dispose()
    return len(rows)


if __name__ == "__main__":
    count = seed(Settings().database_url)
    print(f"seeded {count} products")
