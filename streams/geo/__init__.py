"""Country and ASN of remote addresses: the enricher the core is handed (``IpEnricher``).
May import core, config and errors only."""

from __future__ import annotations

from typing import Any

from streams.config.loader import Config
from streams.core.findings import IpEnricher


def enricher_for(config: Config) -> IpEnricher | None:
    """The enricher the config asks for (``geoip``), or None when off or not installed.

    ``geoip: {country_db, asn_db}`` names MaxMind DB files (a file that cannot be read is a
    UserError); plain ``geoip: true`` uses plevin when the opt-in ``plevin`` extra is installed.
    """
    detection = config.detection
    if not detection.geoip:
        return None
    if detection.geoip_country_db or detection.geoip_asn_db:
        from streams.geo.maxmind import load_maxmind

        enricher: Any = load_maxmind(detection.geoip_country_db, detection.geoip_asn_db)
    else:
        try:
            from streams.geo.enrich import load_enricher
        except ImportError:
            return None
        enricher = load_enricher()
    if enricher is None:
        return None

    def enrich(ip: str):
        details = enricher.lookup(ip)
        if details is None:
            return None
        return details.country_code, details.country_name, details.asn, details.asn_org

    return enrich
