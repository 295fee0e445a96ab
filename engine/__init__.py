"""Switchboard's domain: pure call/operator state machines and their ports."""
