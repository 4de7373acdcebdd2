"""Time zones from the ``tzdata`` package, never from the operating system's zone files.

``zoneinfo.ZoneInfo(name)`` prefers the system's ``/usr/share/zoneinfo`` when there is one, so
the same setting could count days differently on two machines; :func:`zone` always reads the
zone database shipped in the ``tzdata`` wheel (a pinned dependency).
"""

from __future__ import annotations

import importlib.resources
from functools import cache
from zoneinfo import ZoneInfo


@cache
def names() -> frozenset[str]:
    """Every zone name ``tzdata`` ships (``UTC``, ``Europe/Paris``, ...)."""
    listing = importlib.resources.files("tzdata").joinpath("zones").read_text("utf-8")
    return frozenset(listing.split())


@cache
def zone(name: str) -> ZoneInfo:
    """The zone ``name`` from ``tzdata``; ``ValueError`` for an unknown name."""
    if name not in names():
        raise ValueError(
            f"unknown time zone {name!r}: expected an IANA name such as 'UTC' or 'Europe/Paris'"
        )
    resource = importlib.resources.files("tzdata.zoneinfo").joinpath(*name.split("/"))
    with resource.open("rb") as data:
        return ZoneInfo.from_file(data, key=name)
