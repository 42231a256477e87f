"""Write output/category_report.md from product_sales, which seekrun passes as a Parquet file
(SEEKRUN_INPUT_0)."""
import os

import duckdb

rows = duckdb.sql(
    "SELECT category, sum(units_sold) AS units, sum(revenue) AS revenue "
    f"FROM read_parquet('{os.environ['SEEKRUN_INPUT_0']}') GROUP BY category ORDER BY revenue DESC, category"
).fetchall()
os.makedirs("output", exist_ok=True)
with open("output/category_report.md", "w") as f:
    f.write("| category | units | revenue (EUR) |\n|---|---:|---:|\n")
    for category, units, revenue in rows:
        f.write(f"| {category} | {units} | {revenue:.2f} |\n")
