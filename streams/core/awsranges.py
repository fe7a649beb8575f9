"""AWS's published address space (``ip-ranges.json``) as a lookup, built from a parsed document;
``streams.aws.ipranges`` reads the file (the shipped snapshot or the config's ``aws_ip_ranges``)."""

from __future__ import annotations

from dataclasses import dataclass

from streams.core.prefixes import PrefixMap


class BadIpRanges(ValueError):
    """A file that is not AWS's ip-ranges.json."""


@dataclass(frozen=True, slots=True)
class AwsPrefix:
    prefix: str
    region: str
    services: tuple[str, ...]


@dataclass(frozen=True)
class AwsIpRanges:
    sync_token: str
    create_date: str
    prefixes: PrefixMap[AwsPrefix]

    def lookup(self, address: str) -> AwsPrefix | None:
        return self.prefixes.lookup(address)

    def __contains__(self, address: str) -> bool:
        return self.prefixes.lookup(address) is not None


def parse_ip_ranges(document: dict) -> AwsIpRanges:
    """Build the lookup from the parsed JSON document; raises BadIpRanges on a wrong shape."""
    if not isinstance(document, dict) or "prefixes" not in document:
        raise BadIpRanges("no 'prefixes' list: not AWS's ip-ranges.json")
    merged: dict[str, tuple[str, set[str]]] = {}
    for field, items in (("ip_prefix", document.get("prefixes")),
                         ("ipv6_prefix", document.get("ipv6_prefixes") or [])):
        if not isinstance(items, list):
            raise BadIpRanges(f"'{field}' entries are not a list")
        for item in items:
            try:
                prefix, region, service = item[field], item["region"], item["service"]
            except (KeyError, TypeError):
                raise BadIpRanges(f"an entry lacks {field}, region or service: {item!r}") from None
            if not all(isinstance(v, str) for v in (prefix, region, service)):
                raise BadIpRanges(f"an entry's {field}, region and service must be strings: "
                                  f"{item!r:.200}")
            region_services = merged.setdefault(prefix, (region, set()))
            region_services[1].add(service)
    table: PrefixMap[AwsPrefix] = PrefixMap()
    try:
        for prefix, (region, services) in merged.items():
            table.add(prefix, AwsPrefix(prefix, region, tuple(sorted(services))))
    except ValueError as exc:
        raise BadIpRanges(f"bad prefix: {exc}") from None
    if len(table) == 0:
        raise BadIpRanges("no prefixes at all")
    return AwsIpRanges(
        sync_token=str(document.get("syncToken", "")),
        create_date=str(document.get("createDate", "")),
        prefixes=table,
    )
