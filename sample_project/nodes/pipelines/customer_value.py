"""Customer lifetime value, as a Python node.

seekrun finds the decorated function by reading this file's syntax tree at parse time
(it is never imported by `seekrun parse`); `seekrun run` imports it and calls it with a
context.  Editing anything in this file reruns the node and everything downstream.
"""
from seekrun.pipeline import transform


@transform(
    name="customer_lifetime_value",
    inputs=["transform.customer_360"],
    description="Expected margin per customer over the horizon: yearly spend so far x margin x years.",
    owner="growth-team",
    tags=["daily", "marketing"],
    params={"margin": 0.3, "horizon_years": 3},
)
def customer_lifetime_value(ctx):
    margin = float(ctx.params["margin"])
    horizon = float(ctx.params["horizon_years"])
    customers = ctx.ref("transform.customer_360")
    # The day the data ends (latest web event), so the result does not depend on today's date.
    [(as_of,)] = customers.aggregate("max(last_event_at)::DATE").fetchall()
    return ctx.con.sql(f"""
        WITH tenure AS (
            SELECT *, greatest(date_diff('day', signup_date, DATE '{as_of}'), 30) AS tenure_days
            FROM transform.customer_360
        )
        SELECT
            customer_id,
            segment,
            completed_orders,
            total_spent,
            tenure_days,
            round(completed_orders * 365.0 / tenure_days, 2) AS orders_per_year,
            round(total_spent::DOUBLE * 365.0 / tenure_days * {margin} * {horizon}, 2) AS lifetime_value
        FROM tenure
    """)
