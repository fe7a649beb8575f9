"""TLS settings checked where a user can mend them: a client certificate out of its validity
period, and the TLS errors of librdkafka turned into the setting to fix."""

from __future__ import annotations

import re
import ssl
from datetime import UTC, datetime
from pathlib import Path

from streams.errors import UserError

_PEM_CERT = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)


def _tlv(der: bytes, at: int) -> tuple[int, int, int]:
    """(tag, start of the value, end of the value) of the DER element at ``at``."""
    tag, length = der[at], der[at + 1]
    at += 2
    if length & 0x80:
        size = length & 0x7F
        length = int.from_bytes(der[at:at + size], "big")
        at += size
    return tag, at, at + length


def _time(tag: int, text: bytes) -> datetime:
    value = text.decode("ascii").rstrip("Z")
    layout = "%y%m%d%H%M%S" if tag == 0x17 else "%Y%m%d%H%M%S"  # UTCTime, GeneralizedTime
    return datetime.strptime(value, layout).replace(tzinfo=UTC)


def validity(pem: bytes) -> tuple[datetime, datetime]:
    """notBefore and notAfter of the first certificate in a PEM file (RFC 5280 §4.1)."""
    match = _PEM_CERT.search(pem)
    if not match:
        raise ValueError("no PEM certificate in it")
    der = ssl.PEM_cert_to_DER_cert(match.group().decode("ascii"))
    _, at, _ = _tlv(der, 0)          # Certificate
    _, at, _ = _tlv(der, at)         # tbsCertificate
    tag, _, end = _tlv(der, at)
    if tag == 0xA0:                  # [0] version
        at = end
    for _ in range(3):               # serialNumber, signature, issuer
        _, _, at = _tlv(der, at)
    _, at, _ = _tlv(der, at)         # validity
    tag, start, end = _tlv(der, at)
    not_before = _time(tag, der[start:end])
    tag, start, end = _tlv(der, end)
    return not_before, _time(tag, der[start:end])


def check_client_certificate(path: str, now: datetime | None = None) -> None:
    """A client certificate the broker would refuse for its dates is one line naming it."""
    try:
        not_before, not_after = validity(Path(path).read_bytes())
    except (OSError, ValueError, IndexError) as exc:
        raise UserError(f"config: kafka.ssl_certfile {path!r} (EXFILGUARD_SSL_CERTFILE) is not "
                        f"a PEM certificate ({exc})") from None
    now = now or datetime.now(UTC)
    if now >= not_after:
        raise UserError(f"config: kafka.ssl_certfile {path!r} (EXFILGUARD_SSL_CERTFILE) expired "
                        f"on {not_after:%Y-%m-%d %H:%M} UTC: renew the client certificate")
    if now < not_before:
        raise UserError(f"config: kafka.ssl_certfile {path!r} (EXFILGUARD_SSL_CERTFILE) is not "
                        f"valid before {not_before:%Y-%m-%d %H:%M} UTC: check this host's clock")


def client_setting_error(message: str) -> str | None:
    """A librdkafka client-construction error about a TLS file, as the setting to mend."""
    for prop, name in (("ssl.ca.location", "ssl_cafile"),
                       ("ssl.certificate.location", "ssl_certfile"),
                       ("ssl.key.location", "ssl_keyfile")):
        if prop in message:
            reason = message.split(f"{prop} failed: ", 1)[-1].split("routines::")[-1]
            return (f"config: kafka.{name} (EXFILGUARD_{name.upper()}) cannot be used: {reason}"
                    + (" (the key does not belong to kafka.ssl_certfile)"
                       if "key values mismatch" in reason else ""))
    return None


def handshake_error(reasons: list[str], bootstrap: str, cafile: str | None,
                    certfile: str | None) -> str | None:
    """The one line for a failed TLS handshake, naming the setting that decides it."""
    text = " ".join(reasons)
    if "certificate has expired" in text:
        return (f"TLS: the certificate of Kafka at {bootstrap} has expired: the brokers need a "
                "renewed one (kafka.ssl_cafile, EXFILGUARD_SSL_CAFILE, is not at fault)")
    if "certificate verify failed" in text:
        return (f"TLS: the certificate of Kafka at {bootstrap} is not signed by the CA in "
                f"kafka.ssl_cafile ({cafile or 'none set: the system CAs'}): set "
                "EXFILGUARD_SSL_CAFILE to the CA that signed the brokers' certificates")
    if re.search(r"alert (bad certificate|certificate unknown|certificate required|"
                 r"unknown ca|handshake failure)", text):
        if not certfile:
            return (f"TLS: Kafka at {bootstrap} requires a client certificate: set "
                    "EXFILGUARD_SSL_CERTFILE and EXFILGUARD_SSL_KEYFILE (kafka.ssl_certfile, "
                    "kafka.ssl_keyfile)")
        return (f"TLS: Kafka at {bootstrap} refused the client certificate in "
                f"kafka.ssl_certfile ({certfile}): use one signed by a CA the brokers trust "
                "(EXFILGUARD_SSL_CERTFILE)")
    if re.search(r"wrong version number|packet length too long|PLAINTEXT broker listener", text):
        return (f"TLS: Kafka at {bootstrap} does not speak TLS on that port: check "
                "EXFILGUARD_BOOTSTRAP_SERVERS and EXFILGUARD_SECURITY_PROTOCOL")
    return None
