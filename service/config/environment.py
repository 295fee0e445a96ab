"""Which ``SWITCHBOARD_*`` variables are settings, typos of settings, or someone else's. Pure.

The rule, for a variable whose name starts with ``SWITCHBOARD_`` (any case) and is not
``SWITCHBOARD_<KEY>`` for a known key:

* a **near miss** — refused — when its name after the prefix, ignoring case and underscores,
  equals a key or is at least ``SIMILARITY`` alike (``difflib`` ratio): ``SWITCHBOARD_HTTPPORT``,
  ``SWITCHBOARD_JWT_SECRETS``, ``SWITCHBOARD_SIMULATR``. A typo must not fall back to a default.
* a **service link** — only warned about, never a near miss — when it has the shape Kubernetes
  injects for a service named ``switchboard`` or ``switchboard-<anything>``:
  ``*_SERVICE_HOST``, ``*_SERVICE_PORT``, ``*_SERVICE_PORT_<NAME>``,
  ``*_PORT_<number>_<TCP|UDP|SCTP>[_...]``, and ``*_PORT`` when its value is
  ``tcp|udp|sctp://host:port`` (so ``SWITCHBOARD_HTPP_PORT=9000`` is still a typo).
* **ours, not a setting** — ignored — ``SWITCHBOARD_CONFIG`` and ``SWITCHBOARD_TEST_*`` /
  ``SWITCHBOARD_BENCH_*`` (the test suite's and the benchmarks' own switches).
* anything else is **unknown** — only warned about.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from service.config.model import ENV_PREFIX

SIMILARITY = 0.85
_SERVICE_LINK_NAME = re.compile(
    r"(.+_)?(SERVICE_HOST|SERVICE_PORT(_.+)?|PORT_\d+_(TCP|UDP|SCTP)(_.+)?)")
_SERVICE_LINK_VALUE = re.compile(r"(tcp|udp|sctp)://[^/]+:\d+")
_OURS = re.compile(r"CONFIG|(TEST|BENCH)_.+")


@dataclass(frozen=True, slots=True)
class NearMiss:
    variable: str
    key: str


@dataclass(slots=True)
class EnvironmentReport:
    near_misses: list[NearMiss] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)  # service links included


def _squash(name: str) -> str:
    return name.replace("_", "").lower()


def resembles(name: str, keys: Iterable[str]) -> str | None:
    """The key ``name`` is a near miss of (case and underscores ignored), if any."""
    by_squashed = {_squash(key): key for key in keys}
    close = difflib.get_close_matches(_squash(name), by_squashed, n=1, cutoff=SIMILARITY)
    return by_squashed[close[0]] if close else None


def is_service_link(value: str) -> bool:
    """``tcp://10.0.0.7:8001``: what Kubernetes puts in ``<SERVICE>_PORT``."""
    return _SERVICE_LINK_VALUE.fullmatch(value.strip()) is not None


def _service_link(rest: str, value: str) -> bool:
    if _SERVICE_LINK_NAME.fullmatch(rest):
        return True
    return (rest == "PORT" or rest.endswith("_PORT")) and is_service_link(value)


def classify(env: Mapping[str, str], keys: Iterable[str]) -> EnvironmentReport:
    """Sort the ``SWITCHBOARD_*`` variables of ``env`` that are not settings ``keys``."""
    keys = list(keys)
    known = {key.upper() for key in keys}
    report = EnvironmentReport()
    for name in sorted(env):
        upper = name.upper()
        if not upper.startswith(ENV_PREFIX):
            continue
        rest = upper[len(ENV_PREFIX):]
        if rest in known or _OURS.fullmatch(rest):
            continue
        if _service_link(rest, env[name]):
            report.unknown.append(name)
        elif key := resembles(rest, keys):
            report.near_misses.append(NearMiss(name, key))
        else:
            report.unknown.append(name)
    return report
