"""Regenerate the sample shop's input files under data/ (deterministic).

    /work/venv/bin/python sample_project/make_data.py

Writes data/customers.csv, data/products.csv, data/orders.parquet and
data/events.jsonl.  Everything comes from fixed lists or a seeded random.Random,
so running it again reproduces the same rows (the parquet bytes may differ
between DuckDB versions, the contents do not).
"""
from __future__ import annotations

import csv
import json
import random
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import duckdb

DATA = Path(__file__).resolve().parent / "data"

# customer_id, name, country, signup_date
CUSTOMERS = [
    (1, "Alice Janssen", "NL", "2023-01-15"),
    (2, "Bruno Keller", "DE", "2023-02-03"),
    (3, "Chloe Martin", "FR", "2023-03-21"),
    (4, "Dewi Lestari", "ID", "2023-04-09"),
    (5, "Ethan Brooks", "US", "2023-05-30"),
    (6, "Fatima Haddad", "GB", "2023-07-12"),
    (7, "Gijs de Vries", "NL", "2023-08-01"),
    (8, "Hanna Schmidt", "DE", "2023-09-18"),
    (9, "Ivan Petrov", "US", "2023-11-05"),
    (10, "Julia Rossi", "FR", "2024-01-08"),
    (11, "Kenji Sato", "US", "2024-02-20"),   # browses, never orders
    (12, "Lena Novak", "GB", "2024-03-10"),   # signed up, no orders, no events
]

# product_id, product_name, category, unit_price
PRODUCTS = [
    (1, "Espresso Beans 1kg", "coffee", "24.50"),
    (2, "Filter Coffee 500g", "coffee", "12.90"),
    (3, "Ceramic Mug", "kitchen", "9.00"),
    (4, "Pour-over Kettle", "kitchen", "45.00"),
    (5, "Hand Grinder", "equipment", "59.95"),
    (6, "Paper Filters (100)", "accessories", "4.75"),
    (7, "Milk Frother", "equipment", "29.99"),
    (8, "Gift Card", "gift", "25.00"),
]

STATUSES = ["completed"] * 7 + ["cancelled"] * 2 + ["pending"]
EVENT_TYPES = ["page_view"] * 4 + ["add_to_cart"] * 2 + ["checkout", "login", "login"]
N_ORDERS = 40
N_EVENTS = 30
START = date(2024, 3, 1)  # orders and events fall in 2024-03-01 .. 2024-03-14


def write_csv(path: Path, header: list[str], rows) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def make_orders(rng: random.Random) -> list[tuple]:
    days = sorted(rng.randrange(14) for _ in range(N_ORDERS))
    prices = {pid: Decimal(price) for pid, _, _, price in PRODUCTS}
    rows = []
    for i, day in enumerate(days):
        customer_id = rng.randint(1, 10)  # 11 and 12 never order
        product_id = rng.randint(1, len(PRODUCTS))
        quantity = rng.choice([1, 1, 1, 2, 2, 3])
        status = rng.choice(STATUSES)
        amount = prices[product_id] * quantity
        rows.append((1001 + i, customer_id, product_id, (START + timedelta(days=day)).isoformat(),
                     status, quantity, str(amount)))
    return rows


def make_events(rng: random.Random) -> list[dict]:
    seconds = sorted(rng.randrange(14 * 24 * 3600) for _ in range(N_EVENTS))
    base = datetime(START.year, START.month, START.day)
    events = []
    for i, sec in enumerate(seconds):
        events.append({
            "event_id": i + 1,
            "customer_id": rng.randint(1, 11),  # 12 has no events
            "event_type": rng.choice(EVENT_TYPES),
            "ts": (base + timedelta(seconds=sec)).strftime("%Y-%m-%d %H:%M:%S"),
        })
    return events


def main() -> None:
    DATA.mkdir(exist_ok=True)
    rng = random.Random(20240301)

    write_csv(DATA / "customers.csv", ["customer_id", "name", "country", "signup_date"], CUSTOMERS)
    write_csv(DATA / "products.csv", ["product_id", "product_name", "category", "unit_price"], PRODUCTS)

    orders = make_orders(rng)
    con = duckdb.connect(config={"threads": 1})
    con.execute("""
        CREATE TABLE orders (
            order_id INTEGER, customer_id INTEGER, product_id INTEGER, order_date DATE,
            status VARCHAR, quantity INTEGER, amount DECIMAL(10, 2))
    """)
    con.executemany("INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?, ?)", orders)
    out = str(DATA / "orders.parquet").replace("'", "''")
    con.execute(f"COPY (SELECT * FROM orders ORDER BY order_id) TO '{out}' (FORMAT parquet)")
    con.close()

    with (DATA / "events.jsonl").open("w", encoding="utf-8", newline="\n") as fh:
        for event in make_events(rng):
            fh.write(json.dumps(event) + "\n")

    print(f"wrote {len(CUSTOMERS)} customers, {len(PRODUCTS)} products, "
          f"{len(orders)} orders, {N_EVENTS} events to {DATA}")


if __name__ == "__main__":
    main()
