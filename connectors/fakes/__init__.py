"""Fake PBX servers that speak the real protocols over real sockets, for tests and demos."""
