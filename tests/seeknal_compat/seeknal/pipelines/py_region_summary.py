"""Transform in pandas, with keyword params, @materialize and ctx.target_dir."""

import seeknal.pipeline as sp
from seeknal.pipeline.decorators import materialize


@sp.transform(name="py_region_summary", min_orders=2)
@materialize(type="iceberg", table="atlas.analytics.py_region_summary")
def py_region_summary(ctx):
    df = ctx.ref("transform.py_order_enriched")
    out = df.groupby("region", as_index=False).agg(orders=("order_id", "count"), revenue=("amount", "sum"))
    out = out[out["orders"] >= int(ctx.params["min_orders"])]
    out["revenue"] = out["revenue"].round(2)
    out["target_folder"] = ctx.target_dir.name
    return out.sort_values("region").reset_index(drop=True)
