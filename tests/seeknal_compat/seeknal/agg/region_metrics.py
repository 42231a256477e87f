"""Item 6a as a Python decorator: the function's result is what the SOA engine aggregates."""
from seeknal.pipeline import second_order_aggregation


@second_order_aggregation(
    name="agg_region_metrics_py",
    id_col="region",
    feature_date_col="tx_date",
    application_date_col="app_date",
    features={
        "spend_sum": {"basic": ["sum", "mean"]},
        "tx_count": {"basic": ["sum"], "window": [0, 6]},
    },
)
def agg_region_metrics_py(ctx):
    return ctx.ref("transform.agg_customer_day")
