"""Connectors: I/O adapters that turn PBX traffic into raw dicts for the normalizers."""
