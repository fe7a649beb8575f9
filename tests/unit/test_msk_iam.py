"""MSK IAM (SASL OAUTHBEARER): the settings build each client's token wiring, and the tokens
are SigV4-signed `kafka-cluster:Connect` URLs for the cluster's region and the caller's key."""

from __future__ import annotations

import asyncio
import base64
import time
from urllib.parse import parse_qs, urlsplit

import pytest
from confluent_kafka import Producer

from streams.errors import UserError
from streams.kafka import msk_iam
from streams.kafka.settings import load_kafka_settings

ACCESS_KEY = "AKIAIOSFODNN7EXAMPLE"


@pytest.fixture
def aws_credentials(monkeypatch, tmp_path):
    """Credentials the way a pod sees them, and no other source in the chain (no IMDS call)."""
    for name in ("AWS_PROFILE", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "session-token")


def msk_settings(**extra):
    return load_kafka_settings({"bootstrap_servers": "127.0.0.1:1", "security_protocol":
                                "SASL_PLAINTEXT", "sasl_mechanism": "oauthbearer", **extra},
                               environ={})


def signed_url(token: str) -> tuple[str, dict[str, list[str]]]:
    url = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    parts = urlsplit(url)
    return parts.netloc, parse_qs(parts.query)


def test_token_is_a_signed_connect_url_for_the_region(aws_credentials):
    token, expiry = msk_iam.signed_token("eu-west-1")
    host, query = signed_url(token)
    assert host == "kafka.eu-west-1.amazonaws.com"
    assert query["Action"] == ["kafka-cluster:Connect"]
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
    assert query["X-Amz-Credential"][0].startswith(ACCESS_KEY + "/")
    assert query["X-Amz-Credential"][0].endswith("/eu-west-1/kafka-cluster/aws4_request")
    assert query["X-Amz-Security-Token"] == ["session-token"]
    assert query["X-Amz-Expires"] == ["900"]
    assert abs(expiry - (time.time() + 900)) < 120


def test_no_credentials_is_one_clear_line(aws_credentials, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(UserError, match="MSK IAM: no AWS credentials"):
        msk_iam.signed_token("eu-west-1")


def test_settings_need_a_region():
    with pytest.raises(UserError, match="needs kafka.aws_region"):
        msk_settings()
    assert load_kafka_settings({"security_protocol": "SASL_SSL", "sasl_mechanism": "OAUTHBEARER"},
                               environ={"AWS_REGION": "us-east-2"}).aws_region == "us-east-2"


def test_confluent_clients_call_the_signer_through_oauth_cb(aws_credentials, monkeypatch):
    conf = msk_settings(aws_region="eu-west-1").confluent()
    assert conf["sasl.mechanism"] == "OAUTHBEARER"
    assert "sasl.username" not in conf and "sasl.password" not in conf
    calls = []
    real = msk_iam.signed_token

    def recorded(region):
        calls.append(region)
        return real(region)

    monkeypatch.setattr(msk_iam, "signed_token", recorded)
    # librdkafka asks for a token as soon as the client exists, served on poll(); no broker is
    # needed for that (the bootstrap port is closed), and a bad token would be an error here.
    producer = Producer({**conf, "error_cb": lambda err: calls.append(err.str())})
    producer.poll(3)
    assert calls and calls[0] == "eu-west-1"
    assert not any("token" in str(c).lower() for c in calls[1:]), calls


def test_the_worker_gets_an_aiokafka_token_provider(aws_credentials):
    from aiokafka.abc import AbstractTokenProvider
    from faust import OAuthCredentials
    from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

    from streams.app.wiring import broker_credentials

    credentials = broker_credentials(msk_settings(aws_region="ap-south-1"))
    assert isinstance(credentials, OAuthCredentials)
    auth = credentials_to_aiokafka_auth(credentials)
    assert auth["sasl_mechanism"] == "OAUTHBEARER"
    provider = auth["sasl_oauth_token_provider"]
    assert isinstance(provider, AbstractTokenProvider)

    async def two_tokens():
        return await provider.token(), await provider.token()

    first, second = asyncio.run(two_tokens())
    assert signed_url(first)[0] == "kafka.ap-south-1.amazonaws.com"
    assert first == second  # reused until a minute before it expires, not signed per connect


def test_msk_iam_over_tls_uses_sasl_ssl(aws_credentials):
    from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

    from streams.app.wiring import broker_credentials

    settings = load_kafka_settings({"security_protocol": "SASL_SSL", "sasl_mechanism":
                                    "OAUTHBEARER", "aws_region": "eu-west-1"}, environ={})
    auth = credentials_to_aiokafka_auth(broker_credentials(settings))
    assert auth["security_protocol"] == "SASL_SSL" and auth["ssl_context"] is not None
    assert settings.confluent()["security.protocol"] == "sasl_ssl"
