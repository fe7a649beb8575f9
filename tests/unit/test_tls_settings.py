"""Client TLS files checked before any connection: the certificate's dates read from its DER,
and a file librdkafka cannot use named as the setting to mend."""

from __future__ import annotations

import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from tls_certs import Authority  # noqa: E402

from streams.errors import UserError  # noqa: E402
from streams.kafka.settings import load_kafka_settings  # noqa: E402
from streams.kafka.tls import client_setting_error, validity  # noqa: E402


def test_validity_is_read_from_the_certificate(tmp_path):
    ca = Authority(tmp_path)
    cert, _ = ca.issue("client")
    not_before, not_after = validity(cert.read_bytes())
    assert not_before == ca_dates(cert)[0] and not_after == ca_dates(cert)[1]
    assert not_after - not_before == timedelta(days=7, hours=1)


def ca_dates(path: Path) -> tuple[datetime, datetime]:
    from cryptography import x509

    certificate = x509.load_pem_x509_certificate(path.read_bytes())
    return certificate.not_valid_before_utc, certificate.not_valid_after_utc


def settings_with(cert: Path, key: Path, protocol: str = "SSL"):
    return load_kafka_settings({"security_protocol": protocol, "ssl_certfile": str(cert),
                                "ssl_keyfile": str(key)}, environ={})


def test_an_expired_client_certificate_is_refused_at_load(tmp_path):
    ca = Authority(tmp_path)
    with pytest.raises(UserError, match=r"EXFILGUARD_SSL_CERTFILE\) expired on .* renew"):
        settings_with(*ca.issue("old", expired=True))
    assert settings_with(*ca.issue("new")).ssl_certfile.endswith("new.pem")
    # Without TLS the file is not used, so it is not judged.
    assert settings_with(*ca.issue("unused", expired=True), protocol="PLAINTEXT")


def test_a_file_that_is_no_certificate_is_named(tmp_path):
    ca = Authority(tmp_path)
    _, key = ca.issue("client")
    with pytest.raises(UserError, match="is not a PEM certificate"):
        settings_with(key, key)


def test_librdkafka_file_errors_name_the_setting():
    line = client_setting_error('Failed to create admin client: ssl.key.location failed: '
                                'error:05800074:x509 certificate routines::key values mismatch')
    assert line.startswith("config: kafka.ssl_keyfile (EXFILGUARD_SSL_KEYFILE)")
    assert "does not belong to kafka.ssl_certfile" in line
    assert client_setting_error("something else") is None

