"""Kafka connection and deployment settings, from the config's ``kafka:`` section and the
environment (which wins), applied alike to Faust and every confluent-kafka client."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from streams.errors import UserError
from streams.kafka.tls import check_client_certificate

SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
# OAUTHBEARER is Amazon MSK's IAM authentication (tokens signed by aws-msk-iam-sasl-signer).
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER")
FINDINGS_ENCODINGS = ("avro", "json", "confluent")


@dataclass(frozen=True)
class KafkaSettings:
    bootstrap_servers: str = "127.0.0.1:9092"
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = None
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    topic_input: str = "cloudtrail"
    topic_findings: str = "findings"
    topic_dlq: str = "cloudtrail-dlq"
    partitions: int = 4
    # The forwarder stamps records with their eventTime, so time-based retention would delete a
    # backfill of old CloudTrail at once; -1 keeps the input until retention.bytes (set by you).
    input_retention_ms: int = -1
    replication_factor: int = 1
    app_id: str = "exfilguard"
    data_dir: str = ".local/worker"
    web_host: str = "127.0.0.1"
    web_port: int = 6066
    # A worker whose tables are behind their changelogs (an empty disk, a partition moved to it)
    # reads the backlog straight into RocksDB once a partition is this many messages behind:
    # a few µs a message, against ~100 µs through Faust's recovery, and ~0.1 s for a small
    # backlog (see streams/app/restore.py). 0 leaves every recovery to Faust.
    bulk_restore_min_messages: int = 1
    # /readyz turns false when an assigned partition has records waiting and the worker reads
    # none of them for this long (streams/app/readiness.py).
    stall_seconds: int = 120
    # /readyz turns false once no bootstrap server has accepted a connection for this long.
    broker_unready_seconds: int = 30
    broker_probe_seconds: int = 5
    # Repeated client warnings and errors: one line each per this many seconds, the rest counted.
    log_repeat_seconds: int = 60
    # The worker warns at start when AWS's ip-ranges snapshot is older than this.
    ip_ranges_warn_days: int = 30
    # avro: single-object encoding (exfilguard's readers); confluent: Schema Registry framing,
    # which Kafka Connect and SIEM sinks decode; json: one JSON object per finding.
    findings_encoding: str = "avro"
    schema_registry_url: str | None = None
    schema_registry_username: str | None = None  # Confluent Cloud: the registry API key
    schema_registry_password: str | None = None
    # MSK IAM (sasl_mechanism OAUTHBEARER): the cluster's region; credentials come from the
    # default AWS chain (IRSA, instance profile, environment).
    aws_region: str | None = None

    def confluent(self) -> dict[str, Any]:
        """librdkafka properties for confluent-kafka clients."""
        conf: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap_servers,
            "security.protocol": self.security_protocol.lower(),
        }
        if self.sasl_mechanism == "OAUTHBEARER":
            from streams.kafka.msk_iam import confluent_oauth_cb

            conf["sasl.mechanism"] = "OAUTHBEARER"
            conf["oauth_cb"] = confluent_oauth_cb(self.aws_region or "")
        elif self.sasl_mechanism:
            conf["sasl.mechanism"] = self.sasl_mechanism
            conf["sasl.username"] = self.sasl_username or ""
            conf["sasl.password"] = self.sasl_password or ""
        for key, value in (
            ("ssl.ca.location", self.ssl_cafile),
            ("ssl.certificate.location", self.ssl_certfile),
            ("ssl.key.location", self.ssl_keyfile),
        ):
            if value:
                conf[key] = value
        return conf


ENV_PREFIX = "EXFILGUARD_"
_INT_FIELDS = {"partitions", "replication_factor", "web_port", "input_retention_ms",
               "bulk_restore_min_messages", "stall_seconds", "broker_unready_seconds",
               "broker_probe_seconds", "log_repeat_seconds", "ip_ranges_warn_days"}


def env_name(field_name: str) -> str:
    return ENV_PREFIX + field_name.upper()


def load_kafka_settings(section: dict[str, Any] | None, environ: dict[str, str] | None = None,
                        ) -> KafkaSettings:
    """Build settings from a config ``kafka:`` section, then apply ``EXFILGUARD_*`` variables."""
    environ = os.environ if environ is None else environ
    known = {f.name for f in fields(KafkaSettings)}
    values: dict[str, Any] = {}
    for key, value in (section or {}).items():
        if key not in known:
            raise UserError(
                f"config: unknown key kafka.{key}; known keys are {', '.join(sorted(known))}"
            )
        values[key] = value
    for name in known:
        if env_name(name) in environ and environ[env_name(name)] != "":
            values[name] = environ[env_name(name)]
    for name in _INT_FIELDS & values.keys():
        try:
            values[name] = int(values[name])
        except (TypeError, ValueError):
            raise UserError(
                f"config: kafka.{name} (or {env_name(name)}) must be a whole number, "
                f"got {values[name]!r}"
            ) from None
        if name == "input_retention_ms":
            if values[name] < -1:
                raise UserError(f"config: kafka.{name} must be -1 (keep) or more")
        elif name == "bulk_restore_min_messages":
            if values[name] < 0:
                raise UserError(f"config: kafka.{name} must be 0 (off) or more")
        elif values[name] < 1:
            raise UserError(f"config: kafka.{name} must be at least 1, got {values[name]}")
    settings = replace(KafkaSettings(), **values)
    protocol = settings.security_protocol.upper()
    if protocol not in SECURITY_PROTOCOLS:
        raise UserError(
            f"config: kafka.security_protocol {settings.security_protocol!r} is not one of "
            f"{', '.join(SECURITY_PROTOCOLS)}"
        )
    if settings.sasl_mechanism and settings.sasl_mechanism.upper() not in SASL_MECHANISMS:
        raise UserError(
            f"config: kafka.sasl_mechanism {settings.sasl_mechanism!r} is not one of "
            f"{', '.join(SASL_MECHANISMS)}"
        )
    encoding = settings.findings_encoding.lower()
    if encoding not in FINDINGS_ENCODINGS:
        raise UserError(
            f"config: kafka.findings_encoding {settings.findings_encoding!r} is not one of "
            f"{', '.join(FINDINGS_ENCODINGS)}"
        )
    if encoding == "confluent" and not settings.schema_registry_url:
        raise UserError(
            "config: kafka.findings_encoding confluent needs kafka.schema_registry_url "
            f"(or {env_name('schema_registry_url')})"
        )
    mechanism = (settings.sasl_mechanism or "").upper()
    if mechanism == "OAUTHBEARER":
        region = settings.aws_region or environ.get("AWS_REGION") or environ.get(
            "AWS_DEFAULT_REGION")
        if not region:
            raise UserError(
                "config: kafka.sasl_mechanism OAUTHBEARER (MSK IAM) needs kafka.aws_region "
                f"(or {env_name('aws_region')}, or AWS_REGION)"
            )
        settings = replace(settings, aws_region=region)
    if protocol.startswith("SASL") and not settings.sasl_mechanism:
        raise UserError(
            f"config: kafka.security_protocol {protocol} needs kafka.sasl_mechanism "
            f"(or {env_name('sasl_mechanism')})"
        )
    for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
        path = getattr(settings, name)
        if path and not Path(path).is_file():
            raise UserError(f"config: kafka.{name} {path!r} is not a readable file")
    if settings.ssl_certfile and protocol.endswith("SSL"):
        check_client_certificate(settings.ssl_certfile)
    return replace(
        settings,
        security_protocol=protocol,
        sasl_mechanism=settings.sasl_mechanism.upper() if settings.sasl_mechanism else None,
        findings_encoding=encoding,
    )
