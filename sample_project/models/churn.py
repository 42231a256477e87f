"""A tiny, deterministic churn-risk model for kind: model (no ML library needed).

Referenced from nodes/features/churn_model.yml as `python: models/churn.py:score`;
seekrun imports this file only at run time. Editing it reruns the model node.
"""


def score(ctx):
    weights = ctx.params.get("weights", {})
    recency_w = float(weights.get("days_since_last_order", 0.01))
    frequency_w = float(weights.get("completed_orders", -0.4))
    return ctx.con.sql(f"""
        WITH f AS (
            SELECT customer_id,
                   coalesce(date_diff('day', last_order_date, DATE '2024-04-01'), 365) AS days_since_last_order,
                   completed_orders
            FROM transform.customer_orders
        )
        SELECT customer_id, days_since_last_order, completed_orders,
               round(1 / (1 + exp(-(days_since_last_order * {recency_w}
                                    + completed_orders * {frequency_w}))), 4) AS churn_risk
        FROM f
        ORDER BY customer_id
    """)
