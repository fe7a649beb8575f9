"""Broker checks and topic creation with confluent-kafka's admin client: a broker that is down or a
topic with the wrong partition count gets one line naming the problem and the fix."""

from __future__ import annotations

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, ClusterMetadata, NewTopic

from streams.errors import UserError
from streams.kafka.settings import KafkaSettings, env_name
from streams.kafka.tls import client_setting_error, handshake_error

# Findings are keyed by id and updated in place: compaction keeps the latest of each forever.
FINDINGS_CONFIG = {"cleanup.policy": "compact"}


def admin(settings: KafkaSettings, errors: list | None = None) -> AdminClient:
    conf = {**settings.confluent(), "log_level": 0, "logger": _Quiet()}
    if errors is not None:
        conf["error_cb"] = errors.append
    return client(AdminClient, conf)


def client(kind: type, conf: dict):
    """A confluent-kafka client; a TLS file it cannot use is one line naming the setting."""
    try:
        return kind(conf)
    except KafkaException as exc:
        line = client_setting_error(exc.args[0].str())
        if line:
            raise UserError(line) from None
        raise


class _Quiet:
    """librdkafka logs connection refusals at length; the one-line error says it instead."""

    def log(self, *args: object, **kwargs: object) -> None:
        pass

    def __getattr__(self, name: str):  # debug, info, warning, error, exception
        return self.log


LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")


def _unreachable_hint(settings: KafkaSettings) -> str:
    hosts = [s.strip().rpartition(":")[0] for s in settings.bootstrap_servers.split(",")]
    if all(host in LOCAL_HOSTS for host in hosts):
        return (f"start the local broker with `make kafka-up`, or set "
                f"{env_name('bootstrap_servers')}")
    return (f"check that the host names resolve (DNS) and the ports are open from here, and "
            f"that {env_name('security_protocol')} ({settings.security_protocol}) matches the "
            "listener (TLS, SASL)")


def metadata(settings: KafkaSettings, timeout: float = 10.0) -> ClusterMetadata:
    errors: list = []
    client = admin(settings, errors)
    try:
        meta = client.list_topics(timeout=timeout)
    except KafkaException as exc:
        client.poll(0.5)  # error callbacks (why the brokers are "down") are served on poll
        refused = [e for e in errors if e.code() == KafkaError._AUTHENTICATION]
        if refused:
            reason = refused[0].str().split(": ", 1)[-1].split(" (after")[0]
            raise UserError(
                f"Kafka at {settings.bootstrap_servers} refused the credentials ({reason}): "
                f"check {env_name('sasl_username')}, "
                f"{env_name('sasl_password')} and {env_name('sasl_mechanism')}",
                exit_code=3) from None
        ssl_errors = [e for e in errors if e.code() == KafkaError._SSL or "SSL" in e.str()]
        if settings.security_protocol.endswith("SSL"):
            line = handshake_error([e.str() for e in ssl_errors], settings.bootstrap_servers,
                                   settings.ssl_cafile, settings.ssl_certfile)
            if line:
                raise UserError(line, exit_code=3) from None
        detail = ssl_errors[0].str() if ssl_errors else exc.args[0].str()
        raise UserError(
            f"cannot reach Kafka at {settings.bootstrap_servers} ({detail}): "
            f"{_unreachable_hint(settings)}", exit_code=3) from None
    if not meta.brokers:
        raise UserError(f"Kafka at {settings.bootstrap_servers} reports no brokers", exit_code=3)
    return meta


def ensure_topics(settings: KafkaSettings, names: list[str] | None = None,
                  timeout: float = 10.0, input_like: tuple[str, ...] = ()) -> list[str]:
    """Create the missing ones among input, findings, responses and dead-letter topics (or
    ``names``; those in ``input_like`` get the input topic's settings); return those created."""
    meta = metadata(settings, timeout)
    wanted = names or [settings.topic_input, settings.topic_findings, settings.topic_responses,
                       settings.topic_dlq]
    created = []
    new = []
    for name in wanted:
        existing = meta.topics.get(name)
        if existing is not None and existing.error is None:
            count = len(existing.partitions)
            if (name == settings.topic_input or name in input_like) \
                    and count != settings.partitions:
                raise UserError(
                    f"topic {name} has {count} partitions but the config says "
                    f"{settings.partitions}: set {env_name('partitions')}={count}, or use "
                    f"a new topic (partitions cannot shrink)")
            continue
        config = FINDINGS_CONFIG if name in (settings.topic_findings,
                                             settings.topic_responses) else {}
        if name == settings.topic_input or name in input_like:
            config = {"retention.ms": str(settings.input_retention_ms)}
        new.append(NewTopic(name, num_partitions=settings.partitions,
                            replication_factor=settings.replication_factor, config=config))
    if new:
        client = admin(settings)  # must outlive the futures
        for name, future in client.create_topics(new, request_timeout=timeout).items():
            try:
                future.result()
                created.append(name)
            except KafkaException as exc:
                error = exc.args[0]
                if error.name() == "TOPIC_ALREADY_EXISTS":
                    continue
                raise UserError(f"cannot create topic {name}: {error.str()}") from None
    return created
