"""Enrichment from the offline plevin database: real lookups, skipped only where it is absent."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from streams.errors import UserError
from streams.geo.enrich import IpDetails, load_enricher


def _database() -> None:
    """Skip where the optional database is not installed; every other test runs regardless."""
    pytest.importorskip("plevin")
    pytest.importorskip("plevin_db_country")
    pytest.importorskip("plevin_db_network")


@pytest.fixture(scope="module")
def enricher():
    _database()
    found = load_enricher()
    assert found is not None
    return found


def _run(code: str) -> str:
    """Run code in a fresh interpreter, so a module can be hidden from it."""
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=120, check=True)
    return done.stdout.strip()


def test_google_dns(enricher):
    found = enricher.lookup("8.8.8.8")
    assert found.country_code == "US"
    assert found.asn == 15169
    assert "google" in found.asn_org.lower()


def test_cloudflare(enricher):
    found = enricher.lookup("1.1.1.1")
    assert found.asn == 13335
    assert "cloudflare" in found.asn_org.lower()
    assert found.country_code is not None and len(found.country_code) == 2


def test_aws_us_east_1(enricher):
    found = enricher.lookup("3.225.16.109")
    assert found.country_code == "US"
    assert found.asn == 14618
    assert "amazon" in found.asn_org.lower()


def test_ipv6_public(enricher):
    found = enricher.lookup("2001:4860:4860::8888")
    assert found.country_code == "US"
    assert found.asn == 15169


def test_ipv4_mapped_ipv6_reads_as_the_ipv4(enricher):
    assert enricher.lookup("::ffff:8.8.8.8") == enricher.lookup("8.8.8.8")


def test_country_name_with_pycountry(enricher):
    pytest.importorskip("pycountry")
    assert enricher.lookup("8.8.8.8").country_name == "United States"


@pytest.mark.parametrize("ip", [
    "10.0.0.1", "172.16.5.4", "192.168.1.1", "127.0.0.1", "169.254.169.254", "100.64.0.1",
    "192.0.2.1", "0.0.0.0", "224.0.0.1", "255.255.255.255",
    "::1", "fe80::1", "fd00::1", "2001:db8::1", "ff02::1", "::ffff:10.0.0.1",
])
def test_private_and_reserved_are_none(enricher, ip):
    assert enricher.lookup(ip) is None


@pytest.mark.parametrize("value", [
    "", "garbage", "AWS Internal", "ec2.amazonaws.com", "8.8.8", "8.8.8.8.8", "256.1.1.1",
    " 8.8.8.8", "8.8.8.8/32", "1.2.3.4:443", "::g", None, 134744072, b"8.8.8.8", ["8.8.8.8"],
])
def test_bad_input_is_none(enricher, value):
    assert enricher.lookup(value) is None


def test_cached(enricher):
    first = enricher.lookup("1.1.1.1")
    hits = enricher.cache_info().hits
    assert enricher.lookup("1.1.1.1") is first
    assert enricher.cache_info().hits == hits + 1


def test_unpacks_as_the_render_tuple(enricher):
    code, name, asn, org = enricher("8.8.8.8")
    assert (code, asn) == ("US", 15169)
    assert tuple(IpDetails("US", None, 1, None)) == ("US", None, 1, None)


def test_describes_its_files(enricher):
    assert set(enricher.built) == {"country", "network"}
    assert "built 20" in enricher.describe()


def test_no_pycountry_leaves_the_name_null_and_keeps_the_code():
    _database()
    out = _run("""
        import sys
        sys.modules["pycountry"] = None
        from streams.geo.enrich import load_enricher
        found = load_enricher().lookup("8.8.8.8")
        print(found.country_code, found.country_name, found.asn)
    """)
    assert out == "US None 15169"


def test_absent_reader_answers_none():
    out = _run("""
        import sys
        sys.modules["plevin"] = None
        from streams.geo.enrich import load_enricher
        print(load_enricher())
    """)
    assert out == "None"


def test_named_file_without_the_reader_is_a_user_error():
    out = _run("""
        import sys
        sys.modules["plevin"] = None
        from streams.geo.enrich import load_enricher
        from streams.errors import UserError
        try:
            load_enricher("/nowhere/plevin.plv")
        except UserError as error:
            print("UserError", "pip install" in str(error))
    """)
    assert out == "UserError True"


def test_imports_no_kafka_faust_or_boto3():
    out = _run("""
        import sys
        import streams.geo.enrich
        print(sorted(name for name in sys.modules
                     if name.split(".")[0] in {"faust", "confluent_kafka", "aiokafka", "boto3",
                                               "botocore", "mode"}))
    """)
    assert out == "[]"


def test_absent_database_packages_answer_none():
    out = _run("""
        import sys
        for name in ("plevin_db", "plevin_db_place", "plevin_db_country", "plevin_db_network"):
            sys.modules[name] = None
        from streams.geo.enrich import load_enricher
        print(load_enricher())
    """)
    assert out == "None"


def test_one_named_file():
    _database()
    import plevin_db_network

    enricher = load_enricher(plevin_db_network.PATH)
    found = enricher.lookup("8.8.8.8")
    # The network file holds no geolocated country: it stays null, never taken from elsewhere.
    assert (found.country_code, found.asn) == (None, 15169)


def test_unreadable_named_file_is_a_user_error(tmp_path):
    pytest.importorskip("plevin")
    bad = tmp_path / "plevin.plv"
    bad.write_bytes(b"not a database")
    with pytest.raises(UserError):
        load_enricher(bad)
    with pytest.raises(UserError):
        load_enricher(tmp_path / "missing.plv")
