"""Kafka connection and deployment settings, from the config's ``kafka:`` section and the
environment (which wins), applied alike to Faust and every confluent-kafka client."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
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
    sasl_password: str | None = field(default=None, repr=False)  # never printed
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
    # The live view: `/` on web_port shows the open findings (streams/app/live.py). Off by
    # default: it shows keys and addresses to whoever reaches the port.
    web_live_view: bool = False
    # A worker whose tables are behind their changelogs (an empty disk, a partition moved to it)
    # reads the backlog straight into RocksDB once a partition is this many messages behind:
    # a few µs a message, against ~100 µs through Faust's recovery, and ~0.1 s for a small
    # backlog (see streams/app/restore.py). 0 leaves every recovery to Faust.
    bulk_restore_min_messages: int = 1
    # RocksDB memory of each table partition a worker holds (about ten tables times its
    # partitions): two write buffers of this many MiB and a block cache of that many. Faust's
    # defaults (3 x 64 MiB and 2 GiB, each) let a worker's memory grow with its writes until
    # the pod's limit kills it.
    # The core's tables share one changelog (streams/app/state.py); before, each had its own.
    # On, those older tables are read where the shared one has no key, so state an earlier
    # version wrote goes on being read; off, a fresh deployment declares no topics for them.
    legacy_tables: bool = True
    rocksdb_write_buffer_mb: int = 2
    rocksdb_block_cache_mb: int = 4
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
    schema_registry_password: str | None = field(default=None, repr=False)
    # MSK IAM (sasl_mechanism OAUTHBEARER): the cluster's region; credentials come from the
    # default AWS chain (IRSA, instance profile, environment).
    aws_region: str | None = None

    @property
    def topic_responses(self) -> str:
        """``exfilguard respond``'s notes, keyed by finding id (compacted): the worker reads it
        and writes each note into its findings' versions."""
        return f"{self.topic_findings}-responses"

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
               "broker_probe_seconds", "log_repeat_seconds", "ip_ranges_warn_days",
               "rocksdb_write_buffer_mb", "rocksdb_block_cache_mb"}


_BOOL_FIELDS = {"web_live_view", "legacy_tables"}


def _boolean(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "1", "yes", "false", "0", "no"):
        return value.strip().lower() in ("true", "1", "yes")
    raise UserError(f"config: kafka.{name} (or {env_name(name)}) must be true or false, "
                    f"got {value!r}")


_SECRET_FIELDS = {"sasl_password", "schema_registry_password"}
# Strings that must not be empty: a name, an address, a topic.
_REQUIRED_TEXT = {"bootstrap_servers", "security_protocol", "topic_input", "topic_findings",
                  "topic_dlq", "app_id", "data_dir", "web_host", "findings_encoding"}


def env_name(field_name: str) -> str:
    return ENV_PREFIX + field_name.upper()


def _shown(name: str, value: Any) -> str:
    return "(hidden)" if name in _SECRET_FIELDS else repr(value)


def _check_type(name: str, value: Any, from_env: bool) -> None:
    """Each key its own type: a YAML number is no topic, 1.5 no partition count."""
    where = f"config: kafka.{name} (or {env_name(name)})"
    if name in _BOOL_FIELDS:
        return  # _boolean reads true/false, from YAML or the environment
    if name in _INT_FIELDS:
        if from_env:
            if not (value.strip().lstrip("-").isascii() and value.strip().lstrip("-").isdigit()):
                raise UserError(f"{where} must be a whole number, got {value!r}")
        elif isinstance(value, bool) or not isinstance(value, int):
            raise UserError(f"{where} must be a whole number, got {_shown(name, value)}")
        return
    if not isinstance(value, str):
        if value is None and name not in _REQUIRED_TEXT:
            return
        raise UserError(f"{where} must be a string, got {type(value).__name__} "
                        f"{_shown(name, value)} (quote it in YAML)")
    if name in _REQUIRED_TEXT and not value.strip():
        raise UserError(f"{where} must not be empty")


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
    from_env = {name for name in known if environ.get(env_name(name), "") != ""}
    for name in from_env:
        values[name] = environ[env_name(name)]
    for name, value in values.items():
        _check_type(name, value, name in from_env)
    for name in _BOOL_FIELDS & values.keys():
        values[name] = _boolean(name, values[name])
    for name in _INT_FIELDS & values.keys():
        try:
            values[name] = int(values[name])
        except (TypeError, ValueError):
            raise UserError(
                f"config: kafka.{name} (or {env_name(name)}) must be a whole number, "
                f"got {_shown(name, values[name])}"
            ) from None
        if name == "web_port" and values[name] > 65535:
            raise UserError(f"config: kafka.web_port must be a port number, 1 to 65535, got "
                            f"{values[name]}")
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
