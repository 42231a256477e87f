"""Transform reading features across an entity's feature groups with ctx.features."""

from seeknal.pipeline import transform


@transform(name="py_feature_lookup")
def py_feature_lookup(ctx):
    out = ctx.features("customer", ["py_customer_features.order_count", "py_customer_features.total_amount"])
    return out.sort_values("customer_id").reset_index(drop=True)
