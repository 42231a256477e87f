"""Stage the exchange rates: config/fx_rates.yml -> data/staged/fx_rates.csv (sorted, so the
same rates always give the same bytes, and an unchanged file leaves what reads it cached)."""
import csv
import os

import yaml

with open("config/fx_rates.yml") as f:
    config = yaml.safe_load(f)
os.makedirs("data/staged", exist_ok=True)
with open("data/staged/fx_rates.csv", "w", newline="") as f:
    out = csv.writer(f)
    out.writerow(["currency", "rate"])
    for currency, rate in sorted(config["rates"].items()):
        out.writerow([currency, f"{float(rate):.4f}"])
print(f"staged {len(config['rates'])} rates from {config['base']}")
