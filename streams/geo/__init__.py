"""Country and ASN of remote addresses: the enricher the core is handed (``IpEnricher``).
May import core, config and errors only."""

from __future__ import annotations

from streams.config.loader import Config
from streams.core.findings import IpEnricher


def enricher_for(config: Config) -> IpEnricher | None:
    """The enricher the config asks for (``geoip``), or None when off or not installed."""
    if not config.detection.geoip:
        return None
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
