"""Country and ASN from MaxMind DB files (GeoLite2/GeoIP2 from ``geoipupdate``, DB-IP Lite),
read with MaxMind's own reader; the files' paths come from the config (``geoip:``).
A field the file does not hold stays None, never guessed; no lookup leaves the machine."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from streams.errors import UserError
from streams.geo.enrich import CACHE_SIZE, IpDetails, _public

log = logging.getLogger(__name__)

# Older than this, the start-up log says so: geoipupdate refreshes GeoLite2 twice a week.
STALE_AFTER_DAYS = 35


def open_database(path: str, key: str) -> Any:
    """A MaxMind DB reader over ``path``, or a UserError naming the key and the mend."""
    try:
        import maxminddb
    except ImportError:
        raise UserError(f"geoip.{key} is set but MaxMind's reader is not installed: "
                        "pip install maxminddb") from None
    if not Path(path).is_file():
        raise UserError(f"geoip.{key}: {path} is not a file; run geoipupdate (or download "
                        "DB-IP's Lite .mmdb) and point the key at it")
    try:
        return maxminddb.open_database(path)
    except (OSError, ValueError) as exc:  # InvalidDatabaseError is a RuntimeError subclass
        raise UserError(f"geoip.{key}: {path} cannot be read as a MaxMind DB file ({exc})"
                        ) from None
    except RuntimeError as exc:
        raise UserError(f"geoip.{key}: {path} is not a MaxMind DB file ({exc})") from None


def built_on(reader: Any) -> str:
    return datetime.fromtimestamp(reader.metadata().build_epoch, UTC).date().isoformat()


class MaxMindEnricher:
    """Looks addresses up in a country file and an ASN file (either may be absent, or one file
    may hold both, as GeoIP2 Enterprise does). ``lookup`` never raises; calling the enricher is
    ``lookup``, so it can be handed to ``streams.core.findings.render``."""

    def __init__(self, country: Any | None, asn: Any | None,
                 cache_size: int = CACHE_SIZE) -> None:
        if country is None and asn is None:
            raise ValueError("an enricher needs a country or an ASN database")
        self._country = country
        self._asn = asn
        self._failed = False
        self._cached = lru_cache(maxsize=cache_size)(self._lookup)

    def describe(self) -> str:
        """One line for the start-up log: each file's type and build date."""
        parts = []
        for name, reader in (("country", self._country), ("asn", self._asn)):
            if reader is not None:
                meta = reader.metadata()
                parts.append(f"{name} {meta.database_type} built {built_on(reader)}")
        return "MaxMind DB: " + ", ".join(parts)

    def stale(self, today: datetime) -> list[str]:
        """The files older than STALE_AFTER_DAYS on ``today``, as 'name (N days)'."""
        old = []
        for name, reader in (("country_db", self._country), ("asn_db", self._asn)):
            if reader is not None:
                age = (today - datetime.fromtimestamp(reader.metadata().build_epoch, UTC)).days
                if age > STALE_AFTER_DAYS:
                    old.append(f"{name} ({age} days)")
        return old

    def lookup(self, ip: str) -> IpDetails | None:
        try:
            return self._cached(ip)
        except TypeError:  # unhashable input never reaches the cache
            return None

    __call__ = lookup

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
        if self._country is not None:
            record = self._country.get(address) or {}
            # `country` is where the address is geolocated; `registered_country` (where the
            # block is registered) is only a fallback, as MaxMind's own clients do.
            country = record.get("country") or record.get("registered_country") or {}
            code = country.get("iso_code") or None
            name = (country.get("names") or {}).get("en") or None
        if self._asn is not None:
            record = self._asn.get(address) or {}
            number = record.get("autonomous_system_number")
            if number is not None:
                asn = int(number)
                org = record.get("autonomous_system_organization") or None
        return IpDetails(code, name, asn, org)


def load_maxmind(country_db: str | None, asn_db: str | None) -> MaxMindEnricher | None:
    """The enricher over the configured files; None when neither is configured."""
    if country_db is None and asn_db is None:
        return None
    country = open_database(country_db, "country_db") if country_db else None
    if asn_db and asn_db == country_db:
        asn = country
    else:
        asn = open_database(asn_db, "asn_db") if asn_db else None
    enricher = MaxMindEnricher(country, asn)
    log.info("%s", enricher.describe())
    old = enricher.stale(datetime.now(UTC))
    if old:
        log.warning("MaxMind DB files are old: %s; run geoipupdate and restart", ", ".join(old))
    return enricher
