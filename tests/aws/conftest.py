"""moto's server on loopback (never the internet), and an organisation built in it once:
accounts, one of them closed, and EC2 networks in two regions of two accounts."""

from __future__ import annotations

import pytest

pytest.importorskip("boto3")
moto_server = pytest.importorskip("moto.server")

from moto_world import (  # noqa: E402
    DEFAULT_VPC,
    LEAKY,
    MANAGEMENT,
    World,
    build_organisation,
    build_region,
    free_port,
)


@pytest.fixture(scope="session")
def aws_env(tmp_path_factory):
    port = free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    nothing = tmp_path_factory.mktemp("aws") / "none"
    env = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_CONFIG_FILE": str(nothing), "AWS_SHARED_CREDENTIALS_FILE": str(nothing),
           "AWS_EC2_METADATA_DISABLED": "true"}
    yield env
    server.stop()


@pytest.fixture
def in_moto(aws_env, monkeypatch):
    """``aws_env`` for commands run in this process (``main(argv)``)."""
    for name in LEAKY:
        monkeypatch.delenv(name, raising=False)
    for name, value in aws_env.items():
        monkeypatch.setenv(name, value)
    return aws_env


@pytest.fixture(scope="session")
def world(aws_env) -> World:
    active, closed = build_organisation(aws_env)
    member = next(a for a in active if a != MANAGEMENT)
    world = World(active=active, closed=closed, member=member)
    build_region(aws_env, world, MANAGEMENT, "us-east-1", "10.1.0.0/16", ipv6=True)
    build_region(aws_env, world, MANAGEMENT, "eu-west-1", "10.2.0.0/16", extra_cidr="10.3.0.0/16")
    build_region(aws_env, world, member, "eu-west-1", "10.9.0.0/16", ipv6=True)
    world.expect(member, DEFAULT_VPC)  # its us-east-1 holds only the default VPC
    return world
