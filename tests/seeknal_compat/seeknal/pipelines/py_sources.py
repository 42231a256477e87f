# /// script
# requires-python = ">=3.11"
# dependencies = [
#     "pandas",
#     "pyarrow",
# ]
# ///
"""Source: customers, declared in Python (no body: Seeknal reads the file)."""

from seeknal.pipeline import source


@source(
    name="py_customers",
    source="csv",
    table="data/py_customers.csv",
)
def py_customers(ctx=None):
    """Customers."""
    pass
