"""Country and ASN from MaxMind DB files that the tests write themselves (mmdb-writer), read
with MaxMind's reader, through the config's `geoip: {country_db, asn_db}`."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from mmdb_writer import MMDBWriter
from netaddr import IPSet

from streams.config.loader import load_config
from streams.errors import UserError
from streams.geo import enricher_for
from streams.geo.maxmind import MaxMindEnricher, load_maxmind, open_database

ROOT = Path(__file__).resolve().parents[2]
EXFILGUARD = str(Path(sys.executable).with_name("exfilguard"))

# The shapes of GeoLite2-Country and GeoLite2-ASN records (DB-IP Lite writes the same keys).
COUNTRIES = {
    "45.33.32.0/24": {"country": {"iso_code": "US", "names": {"en": "United States"}}},
    "81.2.69.0/24": {"country": {"iso_code": "GB", "names": {"en": "United Kingdom"}}},
    "2001:4860::/32": {"country": {"iso_code": "US", "names": {"en": "United States"}}},
    # Registered in one country, no geolocation: MaxMind's clients fall back to registered.
    "185.1.2.0/24": {"registered_country": {"iso_code": "NL", "names": {"en": "Netherlands"}}},
}
ASNS = {
    "45.33.32.0/24": {"autonomous_system_number": 63949,
                      "autonomous_system_organization": "TEST Akamai Technologies"},
    "2001:4860::/32": {"autonomous_system_number": 15169,
                       "autonomous_system_organization": "TEST Google LLC"},
}


def write_mmdb(path: Path, database_type: str, networks: dict[str, dict]) -> Path:
    writer = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type=database_type,
                        languages=["en"], description={"en": "exfilguard test data"})
    for cidr, record in networks.items():
        writer.insert_network(IPSet([cidr]), record)
    writer.to_db_file(str(path))
    return path


@pytest.fixture
def databases(tmp_path) -> tuple[Path, Path]:
    return (write_mmdb(tmp_path / "country.mmdb", "GeoLite2-Country", COUNTRIES),
            write_mmdb(tmp_path / "asn.mmdb", "GeoLite2-ASN", ASNS))


def test_country_and_asn_of_public_addresses(databases):
    enricher = load_maxmind(str(databases[0]), str(databases[1]))
    assert tuple(enricher("45.33.32.156")) == ("US", "United States", 63949,
                                                "TEST Akamai Technologies")
    assert tuple(enricher("2001:4860:4860::8888")) == ("US", "United States", 15169,
                                                        "TEST Google LLC")
    assert tuple(enricher("::ffff:81.2.69.160")) == ("GB", "United Kingdom", None, None)
    assert tuple(enricher("185.1.2.3")) == ("NL", "Netherlands", None, None)
    assert "country GeoLite2-Country built" in enricher.describe()


@pytest.mark.parametrize("ip", ["10.1.2.3", "169.254.169.254", "100.64.0.1", "::1",
                                "ec2.amazonaws.com", "AWS Internal", "", None, "9.9.9.9"])
def test_private_garbage_and_unknown_addresses_stay_null(databases, ip):
    assert load_maxmind(str(databases[0]), str(databases[1]))(ip) is None


def test_one_file_alone_fills_only_its_fields(databases):
    only_asn = load_maxmind(None, str(databases[1]))
    assert tuple(only_asn("45.33.32.156")) == (None, None, 63949, "TEST Akamai Technologies")
    assert load_maxmind(None, None) is None


def test_a_detected_finding_carries_the_files_country_and_asn(databases, tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(f"geoip:\n  country_db: {databases[0]}\n  asn_db: {databases[1]}\n")
    out = subprocess.run([EXFILGUARD, "detect", "--config", str(config),
                          str(ROOT / "tests/scenarios/duplicate-delivery/records.jsonl")],
                         capture_output=True, check=True).stdout
    details = json.loads(out.splitlines()[0])["service"]["action"]["awsApiCallAction"][
        "remoteIpDetails"]
    assert details["country"] == {"countryCode": "US", "countryName": "United States"}
    assert details["organization"] == {"asn": "63949", "asnOrg": "TEST Akamai Technologies"}


def test_config_paths_reach_the_enricher(databases, tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(f"geoip: {{country_db: {databases[0]}}}\n")
    enrich = enricher_for(load_config(str(config), environ={}))
    assert enrich("81.2.69.160") == ("GB", "United Kingdom", None, None)
    config.write_text("geoip: false\n")
    assert enricher_for(load_config(str(config), environ={})) is None


@pytest.mark.parametrize("geoip, problem", [
    ({"country": "/x.mmdb"}, "geoip.country: unknown key"),
    ({"asn_db": 3}, "geoip.asn_db: expected the path"),
    ({}, "name country_db, asn_db or both"),
    ("yes", "expected true, false or"),
])
def test_bad_geoip_config_names_the_key(tmp_path, geoip, problem):
    config = tmp_path / "config.yaml"
    config.write_text(json.dumps({"geoip": geoip}))
    with pytest.raises(UserError, match=problem):
        load_config(str(config), environ={})


def test_missing_or_foreign_file_is_one_clear_line(tmp_path):
    with pytest.raises(UserError, match="geoip.asn_db: .* is not a file; run geoipupdate"):
        open_database(str(tmp_path / "absent.mmdb"), "asn_db")
    garbage = tmp_path / "garbage.mmdb"
    garbage.write_bytes(b"not a maxmind file" * 100)
    with pytest.raises(UserError, match="geoip.country_db: .* is not a MaxMind DB file"):
        open_database(str(garbage), "country_db")
    config = tmp_path / "config.yaml"
    config.write_text(f"geoip: {{country_db: {garbage}}}\n")
    result = subprocess.run([EXFILGUARD, "detect", "--config", str(config),
                             str(ROOT / "tests/scenarios/duplicate-delivery/records.jsonl")],
                            capture_output=True)
    assert result.returncode == 2
    assert b"Traceback" not in result.stderr
    assert b"is not a MaxMind DB file" in result.stderr


def test_old_files_are_named_in_the_log(databases):
    enricher = load_maxmind(str(databases[0]), str(databases[1]))
    assert enricher.stale(datetime.now(UTC)) == []
    assert enricher.stale(datetime.now(UTC) + timedelta(days=40)) == [
        "country_db (40 days)", "asn_db (40 days)"]


def test_a_damaged_lookup_leaves_fields_null_and_does_not_raise():
    class Broken:
        def get(self, address):
            raise OSError("disk went away")

    assert MaxMindEnricher(Broken(), None)("45.33.32.156") is None
