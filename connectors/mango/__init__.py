"""Mango Office VPBX: signed webhooks in, typed deliveries and engine effects out (pure).

``signing`` checks a delivery and signs commands, ``numbers`` normalises phone numbers,
``events`` turns a delivery's JSON into typed Mango events, ``machine`` turns those into the
engine's call effects. The HTTP side (webhook route, command client) lives elsewhere.
"""
