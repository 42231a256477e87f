# /// script
# requires-python = ">=3.11"
# dependencies = [
#     "pandas",
#     "pyarrow",
#     "duckdb",
# ]
# ///
"""Transform: completed orders with their customer, inputs inferred from ctx.ref()."""

from seeknal.pipeline import transform


@transform(
    name="py_order_enriched",
    description="Completed orders joined to customers",
)
def py_order_enriched(ctx):
    orders = ctx.ref("source.py_orders")
    customers = ctx.ref("source.py_customers")

    # Register for SQL access, as Seeknal's examples do
    ctx.duckdb.register("orders", orders)
    ctx.duckdb.register("customers", customers)

    return ctx.duckdb.sql("""
        SELECT o.order_id, o.customer_id, c.name, c.region,
               CAST(o.amount AS DOUBLE) AS amount, CAST(o.order_date AS DATE) AS order_date
        FROM orders o
        JOIN customers c ON o.customer_id = c.customer_id
        WHERE o.status = 'completed'
        ORDER BY o.order_id
    """).df()
