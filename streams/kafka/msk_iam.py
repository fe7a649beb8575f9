"""Amazon MSK IAM authentication: SASL OAUTHBEARER tokens from aws-msk-iam-sasl-signer.

A token is a SigV4-presigned ``kafka-cluster:Connect`` URL for the cluster's region, signed with
the default AWS credential chain (IRSA on EKS), valid 15 minutes; both Kafka clients refresh it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from streams.errors import UserError

# A cached token is renewed this long before it expires, so a reconnect never sends a dead one.
REFRESH_MARGIN_SECONDS = 60


def signed_token(region: str) -> tuple[str, float]:
    """A fresh token and its expiry (Unix seconds), or a UserError naming the missing part."""
    try:
        from aws_msk_iam_sasl_signer import MSKAuthTokenProvider
    except ImportError:
        raise UserError("kafka.sasl_mechanism OAUTHBEARER (MSK IAM) needs the signer, a "
                        "dependency of exfilguard: pip install aws-msk-iam-sasl-signer-python"
                        ) from None
    try:
        token, expiry_ms = MSKAuthTokenProvider.generate_auth_token(region)
    except (ValueError, AttributeError) as exc:
        # The signer raises ValueError for empty credentials, AttributeError when there are none.
        raise UserError(f"MSK IAM: no AWS credentials to sign with ({exc}); give the pod an "
                        "IAM role (IRSA) or set AWS_* credentials") from None
    return token, expiry_ms / 1000.0


def confluent_oauth_cb(region: str) -> Callable[[str], tuple[str, float]]:
    """librdkafka's ``oauth_cb``: called with sasl.oauthbearer.config, answers (token, expiry)."""

    def oauth_cb(_config: str) -> tuple[str, float]:
        return signed_token(region)

    return oauth_cb


def aiokafka_token_provider(region: str) -> Any:
    """An aiokafka ``AbstractTokenProvider`` for the worker (Faust's ``OAuthCredentials``)."""
    from aiokafka.abc import AbstractTokenProvider

    class MskIamTokenProvider(AbstractTokenProvider):
        def __init__(self) -> None:
            self.region = region
            self._token: str | None = None
            self._expires = 0.0

        async def token(self) -> str:
            # aiokafka asks at every connection; signing is cheap but reuse keeps one token
            # per 15 minutes, as AbstractTokenProvider's contract asks.
            if self._token is None or time.time() > self._expires - REFRESH_MARGIN_SECONDS:
                loop = asyncio.get_running_loop()
                self._token, self._expires = await loop.run_in_executor(
                    None, signed_token, self.region)
            return self._token

    return MskIamTokenProvider()
