"""Country and ASN of a remote address from an offline database (plevin's; docs/enrichment.md has
its sources and licences). ``load_enricher()`` answers None when it is not installed; a field
the database does not hold stays None, never guessed, and no lookup leaves the machine."""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterator
from dataclasses import astuple, dataclass
from functools import lru_cache
from importlib import import_module
from os import PathLike
from pathlib import Path
from typing import Any

from streams.errors import UserError

log = logging.getLogger(__name__)

CACHE_SIZE = 65_536  # distinct addresses kept; findings name few, but a flood must stay bounded

# Database packages, richest first; each exposes PATH, the .plv file it ships.
COUNTRY_PACKAGES = ("plevin_db", "plevin_db_place", "plevin_db_country")
NETWORK_PACKAGES = ("plevin_db", "plevin_db_network")


@dataclass(frozen=True)
class IpDetails:
    country_code: str | None
    country_name: str | None
    asn: int | None
    asn_org: str | None

    def __iter__(self) -> Iterator[Any]:
        # Unpacks like the (code, name, asn, org) tuple that findings.render's enricher answers.
        return iter(astuple(self))


def _public(ip: str) -> str | None:
    """The address spelled canonically when it is globally routable, else None."""
    if not isinstance(ip, str):
        return None
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if not address.is_global or address.is_multicast:
        return None
    return str(address)


class Enricher:
    """Looks addresses up in one or two plevin files: one for the country, one for the ASN.

    ``lookup`` never raises: bad input, private, reserved and unknown addresses answer None.
    Calling the enricher answers the same as ``lookup``, so it can be handed to
    ``streams.core.findings.render`` as its ``enrich`` argument.
    """

    def __init__(self, country_db: Any | None, network_db: Any | None,
                 cache_size: int = CACHE_SIZE) -> None:
        if country_db is None and network_db is None:
            raise ValueError("an enricher needs a country or a network database")
        self._country_db = country_db
        self._network_db = network_db
        self._failed = False
        self._cached = lru_cache(maxsize=cache_size)(self._lookup)

    @property
    def built(self) -> dict[str, str]:
        """The build date of each file in use, e.g. {"country": "2026-10-04", ...}."""
        found = {}
        for name, db in (("country", self._country_db), ("network", self._network_db)):
            if db is not None:
                found[name] = str(db.built)
        return found

    def describe(self) -> str:
        """One line for the start-up log: which files, built when."""
        parts = []
        for name, db in (("country", self._country_db), ("network", self._network_db)):
            if db is not None:
                parts.append(f"{name} {Path(db.path).name} built {self.built[name]}")
        return "plevin: " + ", ".join(parts)

    def lookup(self, ip: str) -> IpDetails | None:
        try:
            return self._cached(ip)
        except TypeError:  # unhashable input never reaches the cache
            return None

    __call__ = lookup

    def cache_info(self) -> Any:
        return self._cached.cache_info()

    def _lookup(self, ip: str) -> IpDetails | None:
        address = _public(ip)
        if address is None:
            return None
        try:
            details = self._read(address)
        except Exception as error:  # a damaged file must not stop the findings
            if not self._failed:
                self._failed = True
                log.warning("enrichment lookup failed (%s); fields left null", error)
            return None
        if details == IpDetails(None, None, None, None):
            return None
        return details

    def _read(self, address: str) -> IpDetails:
        code = name = org = None
        asn = None
        if self._country_db is not None:
            place = self._country_db.lookup(address).place
            country = place.country if place is not None else None
            if country is not None:
                code = country.code or None
                # A name only where pycountry (or plevin's own table) knows the code.
                name = country.common or country.name or None
        if self._network_db is not None:
            network = self._network_db.lookup(address).network
            if network is not None and network.asn is not None:
                asn = int(network.asn)
                # Unannounced space has a registry holder but no ASN: no org is given then.
                operator = network.operator
                org = (operator.company if operator is not None else None) or network.handle
        return IpDetails(code, name, asn, org or None)


def _shipped(packages: tuple[str, ...]) -> Path | None:
    for package in packages:
        try:
            module = import_module(package)
        except ImportError:
            continue
        path = Path(module.PATH)
        if path.is_file():
            return path
    return None


def load_enricher(database: str | PathLike[str] | None = None,
                  cache_size: int = CACHE_SIZE) -> Enricher | None:
    """The enricher over the installed database packages, or None when there are none.

    ``database`` names one .plv file to use for both country and ASN instead (a full
    ``plevin.plv`` downloaded by hand, say); a named file that cannot be read is a UserError,
    since the user asked for it. Without it, a missing reader or database is not an error.
    """
    try:
        plevin = import_module("plevin")
    except ImportError:
        if database is not None:
            raise UserError(
                f"enrichment database {database} is set but the reader is not installed; "
                'pip install "plevin[country,network]" pycountry'
            ) from None
        log.debug("plevin is not installed: findings carry no country or ASN")
        return None
    if database is not None:
        path = Path(database)
        try:
            db = plevin.Plevin(path)
        except (OSError, ValueError) as error:
            raise UserError(f"enrichment database {path} cannot be read: {error}") from None
        return Enricher(db, db, cache_size)
    country_path = _shipped(COUNTRY_PACKAGES)
    network_path = _shipped(NETWORK_PACKAGES)
    if country_path is None and network_path is None:
        log.debug("no plevin database package is installed: findings carry no country or ASN")
        return None
    opened: dict[Path, Any] = {}
    for path in (country_path, network_path):
        if path is not None and path not in opened:
            opened[path] = plevin.Plevin(path)
    return Enricher(opened.get(country_path) if country_path else None,
                    opened.get(network_path) if network_path else None, cache_size)
