# /// script
# requires-python = ">=3.11"
# dependencies = [
#     "pandas",
#     "pyarrow",
#     "duckdb",
# ]
# ///
"""Feature group: per-customer order features, with a Materialization object."""

from seeknal.pipeline import feature_group
from seeknal.pipeline.materialization import Materialization, OfflineConfig


@feature_group(
    name="py_customer_features",
    entity="customer",
    description="Order features per customer",
    materialization=Materialization(
        offline=OfflineConfig(format="parquet"),
    ),
)
def py_customer_features(ctx):
    df = ctx.ref("transform.py_order_enriched")
    return ctx.duckdb.sql("""
        SELECT customer_id,
               COUNT(*) AS order_count,
               ROUND(SUM(amount), 2) AS total_amount,
               MAX(order_date) AS event_time
        FROM df
        GROUP BY customer_id
        ORDER BY customer_id
    """).df()
