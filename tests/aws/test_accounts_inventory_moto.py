"""``exfilguard accounts`` and ``exfilguard inventory`` against moto's server: the YAML they print
holds exactly the organisation's accounts and the networks built, and the config accepts it."""

from __future__ import annotations

import yaml
from moto_world import DEFAULT_VPC, MANAGEMENT, ROLE, run

from streams.core.settings import parse_config


def parsed(result) -> dict:
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip()]


def test_accounts_lists_the_active_accounts_of_the_organisation(aws_env, world):
    result = run(aws_env, "accounts")
    assert parsed(result) == {"associated_accounts": world.active}
    assert world.closed not in result.stdout
    assert result.stdout.startswith(
        f"# {len(world.active)} accounts, ACTIVE in AWS Organizations (exfilguard accounts, ")
    # Quoted: a YAML integer would lose an account id's leading zeros.
    assert all(f'  - "{account}"' in result.stdout for account in world.active)


def test_accounts_writes_the_output_file(aws_env, world, tmp_path):
    out = tmp_path / "accounts.yaml"
    result = run(aws_env, "accounts", "--output", str(out))
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert yaml.safe_load(out.read_text()) == {"associated_accounts": world.active}


def test_inventory_of_the_current_account_in_two_regions(aws_env, world):
    result = run(aws_env, "inventory", "--regions", "us-east-1,eu-west-1")
    networks = parsed(result)["account_networks"]
    assert list(networks) == [MANAGEMENT]
    assert set(networks[MANAGEMENT]) == world.networks[MANAGEMENT]
    assert len(networks[MANAGEMENT]) == len(world.networks[MANAGEMENT])  # no duplicates
    assert lines(result.stderr) == [
        f"exfilguard inventory: {len(networks[MANAGEMENT])} networks for 1 account"]


def test_inventory_through_an_assumed_role(aws_env, world):
    result = run(aws_env, "inventory", "--regions", "eu-west-1,us-east-1", "--role-name", ROLE,
                 "--accounts", f"{world.member},{MANAGEMENT}")
    networks = parsed(result)["account_networks"]
    assert {a: set(c) for a, c in networks.items()} == world.networks
    # Sorted by address, IPv4 first: the same inventory gives the same text.
    member = networks[world.member]
    assert member.index(DEFAULT_VPC) > member.index("10.9.0.0/16")
    assert ":" in member[-1]


def test_inventory_of_every_account_of_the_organisation(aws_env, world):
    result = run(aws_env, "inventory", "--regions", "us-east-1,eu-west-1", "--role-name", ROLE,
                 "--accounts-from-organizations")
    networks = parsed(result)["account_networks"]
    assert sorted(networks) == world.active
    for account in world.active:
        assert set(networks[account]) == world.networks.get(account, {DEFAULT_VPC})
    # Every default VPC is 172.31.0.0/16: said once, not an error.
    shared = "under several accounts (172.31.0.0/16 under 3)"
    assert any(shared in line for line in lines(result.stderr))


def test_inventory_collects_each_accounts_vpc_endpoints_in_every_region_asked(aws_env, world):
    result = run(aws_env, "inventory", "--regions", "eu-west-1,us-east-1", "--role-name", ROLE,
                 "--accounts", world.member)
    document = parsed(result)
    endpoints = document["account_vpc_endpoints"]
    # Both regions of the management account, the member's one: each account's own ids only.
    assert {a: set(ids) for a, ids in endpoints.items()} == world.endpoints
    assert len(endpoints[MANAGEMENT]) == 2
    assert all(ids == sorted(ids) for ids in endpoints.values())
    config = parse_config(document)
    assert config.account_vpc_endpoints == {a: frozenset(i) for a, i in world.endpoints.items()}


def test_inventory_of_every_enabled_region(aws_env, world):
    result = run(aws_env, "inventory", "--all-regions", "--workers", "16")
    networks = parsed(result)["account_networks"]
    assert set(networks[MANAGEMENT]) == world.networks[MANAGEMENT]
    assert "every enabled region" in result.stdout.splitlines()[0]


def test_both_outputs_feed_the_config(aws_env, world, tmp_path):
    accounts = parsed(run(aws_env, "accounts"))
    inventory = parsed(run(aws_env, "inventory", "--regions", "us-east-1,eu-west-1",
                           "--role-name", ROLE, "--accounts", world.member))
    config = parse_config({**accounts, **inventory})
    assert config.associated_accounts == frozenset(world.active)
    for account, cidrs in world.networks.items():
        for cidr in cidrs - {DEFAULT_VPC}:
            assert config.declared.lookup(cidr.split("/")[0]) == account
    # And the exfilguard command reads the file, merged, as its config.
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({**accounts, **inventory}))
    assert run(aws_env, "ip-ranges", "show", "--config", str(path)).returncode == 0


def test_role_flags_need_each_other(aws_env):
    for args in (["--accounts", "111122223333"], ["--role-name", ROLE],
                 ["--accounts-from-organizations"]):
        result = run(aws_env, "inventory", *args)
        assert result.returncode == 2
        assert len(lines(result.stderr)) == 1 and "Traceback" not in result.stderr


def test_a_bad_account_or_region_is_one_line(aws_env):
    result = run(aws_env, "inventory", "--role-name", ROLE, "--accounts", "12345")
    assert result.returncode == 2 and lines(result.stderr) == [
        "exfilguard inventory: error: --accounts: '12345' is not a 12-digit account id"]
    result = run(aws_env, "inventory", "--regions", "Mars")
    assert result.returncode == 2 and len(lines(result.stderr)) == 1
