"""Asterisk REST Interface (ARI): REST client, events WebSocket stream and domain errors."""
