"""``make bench``: replay real ARI traffic at a fixed frame rate against a running Switchboard
and N authenticated dashboards, and against a bare forwarder (the baseline); print latency
(ARI frame leaving the fake -> dashboard frame arriving), deliveries/s and CPU.

Run ``python -m bench --help`` for the options.
"""
