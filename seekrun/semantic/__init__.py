"""Seeknal's semantic layer: semantic models, metrics, their views and `seekrun query`."""
