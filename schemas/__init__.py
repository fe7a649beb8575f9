"""Avro schemas of exfilguard's topics; installed inside the package as ``streams.schemas``."""
