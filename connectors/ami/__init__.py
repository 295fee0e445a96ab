"""Asterisk Manager Interface (AMI): sans-I/O protocol and response-list collection."""
