"""FeatureFrame: what ctx.ref("feature_group.x") returns in a file written for Seeknal, for a
feature group seekrun builds from YAML (as Seeknal does): a pandas DataFrame that also knows
its entity, join keys and event-time column, with ``pit_join`` and ``as_of``."""
from __future__ import annotations

from typing import Any, List, Optional

import pandas as pd


def _q(name: str) -> str:
    return '"' + str(name).replace('"', '""') + '"'


class FeatureFrame(pd.DataFrame):
    _metadata = ["entity_name", "join_keys", "event_time_col"]

    def __init__(self, df: Any = None, entity_name: str = "", join_keys: Optional[List[str]] = None,
                 event_time_col: str = "event_time", **kwargs: Any):
        super().__init__(df, **kwargs)
        self.entity_name = entity_name
        self.join_keys = list(join_keys or [])
        self.event_time_col = event_time_col

    @property
    def _constructor(self):  # derived frames (head, filters, ...) are plain DataFrames
        return pd.DataFrame

    def to_df(self) -> pd.DataFrame:
        return pd.DataFrame(self)

    def _con(self, **frames):
        import duckdb

        con = duckdb.connect()
        for name, frame in frames.items():
            con.register(name, frame)
        return con

    def pit_join(self, spine: Any, date_col: str, keep_cols: Optional[List[str]] = None) -> pd.DataFrame:
        """For each spine row, the latest feature row of its keys at or before spine[date_col]."""
        spine = pd.DataFrame(spine).copy()
        spine[date_col] = pd.to_datetime(spine[date_col])
        feats = self.to_df().copy()
        ev = self.event_time_col
        if ev in feats.columns:
            feats[ev] = pd.to_datetime(feats[ev])
        drop = sorted(set(self.join_keys) | (set(spine.columns) & set(feats.columns)))
        on = " AND ".join([f"s.{_q(k)} = f.{_q(k)}" for k in self.join_keys] + [f"f.{_q(ev)} <= s.{_q(date_col)}"])
        part = ", ".join([f"s.{_q(k)}" for k in self.join_keys] + [f"s.{_q(date_col)}"])
        excl = f" EXCLUDE ({', '.join(_q(c) for c in drop)})" if drop else ""
        con = self._con(spine=spine, features=feats)
        try:
            out = con.execute(
                f"SELECT * EXCLUDE (_rn) FROM (SELECT s.*, f.*{excl}, ROW_NUMBER() OVER (PARTITION BY {part} "
                f"ORDER BY f.{_q(ev)} DESC) AS _rn FROM spine s LEFT JOIN features f ON {on}) "
                "WHERE _rn = 1 OR _rn IS NULL").df()
        finally:
            con.close()
        if keep_cols:
            keep = set(keep_cols) | set(self.join_keys) | {date_col}
            out = out[[c for c in out.columns if c in keep or c not in set(spine.columns)]]
        return out

    def as_of(self, timestamp: str) -> pd.DataFrame:
        """Each key's latest feature row at or before timestamp."""
        feats = self.to_df().copy()
        ev = self.event_time_col
        if ev in feats.columns:
            feats[ev] = pd.to_datetime(feats[ev])
        part = ", ".join(_q(k) for k in self.join_keys)
        lit = "'" + str(timestamp).replace("'", "''") + "'"
        con = self._con(features=feats)
        try:
            return con.execute(
                f"SELECT * EXCLUDE (_rn) FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY {part} ORDER BY {_q(ev)} "
                f"DESC) AS _rn FROM features WHERE {_q(ev)} <= CAST({lit} AS TIMESTAMP)) WHERE _rn = 1").df()
        finally:
            con.close()
