"""What moto cannot play: GuardDuty's members, instances' IPv6 addresses, a region that denies
access or is not enabled, a role that cannot be assumed. botocore's Stubber answers; nothing
leaves the process."""

from __future__ import annotations

import boto3
import pytest
import yaml
from botocore.stub import Stubber

from streams.aws import inventory as inv
from streams.aws.organizations import guardduty_accounts, organization_accounts
from streams.cli import accounts as edge
from streams.cli.main import main
from streams.core.settings import parse_config
from streams.errors import UserError

ME, OTHER, DENIED = "111122223333", "444455556666", "777788889999"


def stubbed(service: str, region: str = "us-east-1"):
    client = boto3.client(service, region_name=region, aws_access_key_id="x",
                          aws_secret_access_key="x", endpoint_url="http://127.0.0.1:9")
    return client, Stubber(client)


def account(number: str, state: str | None = None, status: str | None = None) -> dict:
    item = {"Id": number, "Name": f"a{number}"}
    if state:
        item["State"] = state
    if status:
        item["Status"] = status
    return item


def test_organization_accounts_reads_every_page_and_keeps_the_active():
    client, stub = stubbed("organizations")
    stub.add_response("list_accounts", {"Accounts": [
        account(ME, "ACTIVE", "ACTIVE"), account("000000000001", "SUSPENDED", "SUSPENDED"),
        account("000000000002", "PENDING_CLOSURE")], "NextToken": "t"})
    stub.add_response("list_accounts", {"Accounts": [
        account(OTHER, status="ACTIVE"),  # before State existed
        account("000000000003", "CLOSED")]}, {"NextToken": "t"})
    with stub:
        assert organization_accounts(client) == [ME, OTHER]
    stub.assert_no_pending_responses()


def test_organization_accounts_denied_is_one_line():
    client, stub = stubbed("organizations")
    stub.add_client_error("list_accounts", "AccessDeniedException",
                          "You don't have permissions to access this resource.")
    with stub, pytest.raises(UserError) as caught:
        organization_accounts(client)
    assert str(caught.value) == (
        "organizations list-accounts: AccessDeniedException: You don't have permissions to "
        "access this resource. (run it with the management account or a delegated "
        "administrator)")


def member(number: str, status: str) -> dict:
    return {"AccountId": number, "MasterId": ME, "AdministratorId": ME, "Email": "x@example.com",
            "RelationshipStatus": status, "UpdatedAt": "2026-01-01T00:00:00Z"}


def guardduty_stub(region: str = "eu-west-1"):
    client, stub = stubbed("guardduty", region)
    stub.add_response("list_detectors", {"DetectorIds": ["d1"]})
    stub.add_response("list_members", {"Members": [member(OTHER, "Enabled"),
                                                   member("000000000001", "Invited")],
                                       "NextToken": "t"},
                      {"DetectorId": "d1", "OnlyAssociated": "true"})
    stub.add_response("list_members", {"Members": [member("000000000002", "ENABLED"),
                                                   member("000000000003", "Removed")]},
                      {"DetectorId": "d1", "OnlyAssociated": "true", "NextToken": "t"})
    return client, stub


def test_guardduty_accounts_are_the_administrator_and_its_enabled_members():
    client, stub = guardduty_stub()
    with stub:
        assert guardduty_accounts(client) == ["000000000002", ME, OTHER]
    stub.assert_no_pending_responses()


def test_guardduty_without_a_detector_says_where_it_looked():
    client, stub = stubbed("guardduty", "eu-west-1")
    stub.add_response("list_detectors", {"DetectorIds": []})
    with stub, pytest.raises(UserError, match="no detector in eu-west-1"):
        guardduty_accounts(client)


class FakeSession:
    def __init__(self, name: str, region_name: str | None = "us-east-1") -> None:
        self.name, self.region_name = name, region_name


@pytest.fixture
def clients(monkeypatch):
    """Stubbed clients for the commands run in this process, by (session, service, region)."""
    table: dict[tuple[str, str, str], object] = {}

    def new_session(**credentials):
        return FakeSession(credentials.get("aws_access_key_id", ME))

    def aws_client(session, service, region):
        return table[session.name, service, region]

    monkeypatch.setattr(edge, "new_session", new_session)
    monkeypatch.setattr(edge, "aws_client", aws_client)
    return table


def test_the_accounts_command_from_guardduty(clients, capsys):
    client, stub = guardduty_stub()
    clients[ME, "guardduty", "eu-west-1"] = client
    with stub:
        assert main(["accounts", "--source", "guardduty", "--region", "eu-west-1"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# 3 accounts, GuardDuty's administrator and Enabled members")
    assert yaml.safe_load(out) == {"associated_accounts": ["000000000002", ME, OTHER]}


def instance(**fields) -> dict:
    return {"Instances": [{"InstanceId": "i-0123456789abcdef0", **fields}]}


def ec2_answers(stub: Stubber, instances: list[dict], vpcs: list[dict], addresses=(),
                gateways=(), endpoints=(), endpoints_error: str | None = None) -> None:
    stub.add_response("describe_instances", {"Reservations": instances})
    stub.add_response("describe_addresses", {"Addresses": [{"PublicIp": a} for a in addresses]})
    stub.add_response("describe_nat_gateways", {"NatGateways": list(gateways)})
    stub.add_response("describe_vpcs", {"Vpcs": vpcs})
    if endpoints_error:
        stub.add_client_error("describe_vpc_endpoints", endpoints_error, "not allowed")
    else:
        stub.add_response("describe_vpc_endpoints", {"VpcEndpoints": [
            {"VpcEndpointId": e, "VpcEndpointType": "Interface"} for e in endpoints]})


VPC = {"VpcId": "vpc-1", "CidrBlock": "10.0.0.0/16", "CidrBlockAssociationSet": [
    {"CidrBlock": "10.0.0.0/16", "CidrBlockState": {"State": "associated"}},
    {"CidrBlock": "10.99.0.0/16", "CidrBlockState": {"State": "disassociated"}}],
    "Ipv6CidrBlockAssociationSet": [
    {"Ipv6CidrBlock": "2600:1f18:aaaa:bb00::/56", "Ipv6CidrBlockState": {"State": "associated"}},
    {"Ipv6CidrBlock": "2600:1f18:dead::/56", "Ipv6CidrBlockState": {"State": "disassociated"}}]}


def test_region_networks_reads_every_kind_of_address():
    client, stub = stubbed("ec2")
    interface = {"Association": {"PublicIp": "198.51.100.7"},
                 "PrivateIpAddresses": [{"PrivateIpAddress": "10.0.0.5"},
                                        {"Association": {"PublicIp": "198.51.100.8"}}],
                 "Ipv6Addresses": [{"Ipv6Address": "2600:1f18:aaaa:bb01::5"}]}
    outside_the_vpc = {"Ipv6Addresses": [{"Ipv6Address": "2a05:d018::1"}]}
    ec2_answers(stub, [
        instance(PublicIpAddress="198.51.100.7", Ipv6Address="2600:1f18:aaaa:bb01::5",
                 NetworkInterfaces=[interface, outside_the_vpc]),
        instance(PrivateIpAddress="10.0.0.9")],
        [VPC], addresses=["203.0.113.1"],
        gateways=[{"State": "available", "NatGatewayAddresses": [{"PublicIp": "203.0.113.2"}]},
                  {"State": "deleted", "NatGatewayAddresses": [{"PublicIp": "203.0.113.3"}]}])
    with stub:
        found = inv.region_networks(client)
    assert found == {"198.51.100.7/32", "198.51.100.8/32", "2600:1f18:aaaa:bb01::5/128",
                     "2a05:d018::1/128", "203.0.113.1/32", "203.0.113.2/32", "10.0.0.0/16",
                     "2600:1f18:aaaa:bb00::/56"}
    # An address inside a collected network adds nothing; the order is by address, IPv4 first.
    assert inv.minimal(found) == ["10.0.0.0/16", "198.51.100.7/32", "198.51.100.8/32",
                                  "203.0.113.1/32", "203.0.113.2/32", "2600:1f18:aaaa:bb00::/56",
                                  "2a05:d018::1/128"]


def test_minimal_sorts_by_address_and_drops_what_is_inside():
    assert inv.minimal(["10.0.0.0/8", "9.1.2.3/32", "10.1.0.0/16", "10.0.0.0/8", "10.1.2.3"]) == [
        "9.1.2.3/32", "10.0.0.0/8"]


def ec2_region(table: dict, session: str, region: str, answers=None, error: str | None = None):
    client, stub = stubbed("ec2", region)
    if error:
        stub.add_client_error("describe_instances", error, f"{error} in {region}")
    else:
        ec2_answers(stub, *answers)
    stub.activate()
    table[session, "ec2", region] = client
    return stub


def sts_stub(table: dict, denied: tuple[str, ...] = ()) -> Stubber:
    client, stub = stubbed("sts")
    stub.add_response("get_caller_identity", {"Account": ME, "UserId": "AIDAEXAMPLE",
                                                "Arn": f"arn:aws:iam::{ME}:user/ops"})
    for number in (OTHER, DENIED):
        if number in denied:
            stub.add_client_error("assume_role", "AccessDenied", "not authorized to assume it")
            continue
        stub.add_response("assume_role", {"Credentials": {
            "AccessKeyId": f"key-of-{number}", "SecretAccessKey": "s", "SessionToken": "t",
            "Expiration": "2030-01-01T00:00:00Z"}})
    stub.activate()
    table[ME, "sts", "us-east-1"] = client
    return stub


def test_a_denied_region_or_role_is_skipped_and_the_rest_collected(clients, capsys):
    sts_stub(clients, denied=(DENIED,))
    other = [[instance(PublicIpAddress="198.51.100.20")], [VPC]]
    ec2_region(clients, ME, "us-east-1", [[instance(PublicIpAddress="198.51.100.10")], [VPC]])
    ec2_region(clients, ME, "eu-west-1", error="UnauthorizedOperation")
    ec2_region(clients, ME, "ap-east-1", error="OptInRequired")
    ec2_region(clients, f"key-of-{OTHER}", "us-east-1", other)
    ec2_region(clients, f"key-of-{OTHER}", "eu-west-1", [[], []])
    ec2_region(clients, f"key-of-{OTHER}", "ap-east-1", error="OptInRequired")
    code = main(["inventory", "--regions", "us-east-1,eu-west-1,ap-east-1", "--role-name", "R",
                 "--accounts", f"{OTHER},{DENIED}"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert captured.err.splitlines() == [
        f"exfilguard inventory: {DENIED}: AccessDenied: not authorized to assume it; skipped",
        f"exfilguard inventory: {ME} ap-east-1: OptInRequired: OptInRequired in ap-east-1; "
        "region not enabled, skipped",
        f"exfilguard inventory: {ME} eu-west-1: UnauthorizedOperation: UnauthorizedOperation in "
        "eu-west-1; skipped",
        f"exfilguard inventory: {OTHER} ap-east-1: OptInRequired: OptInRequired in ap-east-1; "
        "region not enabled, skipped",
        "exfilguard inventory: 2 networks under several accounts (10.0.0.0/16 under 2): the "
        "config keeps one owner for each",
        "exfilguard inventory: 6 networks for 2 accounts, 4 skipped"]
    document = yaml.safe_load(captured.out)
    assert document["account_networks"] == {
        ME: ["10.0.0.0/16", "198.51.100.10/32", "2600:1f18:aaaa:bb00::/56"],
        OTHER: ["10.0.0.0/16", "198.51.100.20/32", "2600:1f18:aaaa:bb00::/56"]}
    # The account read in part says so where the config will hold it.
    assert "  # incomplete, not read: eu-west-1" in captured.out
    assert "incomplete" not in captured.out.split(f'"{ME}"')[1]
    parse_config(document)


E1, E2, E3, E4 = (f"vpce-0{n}{'a1b2c3d4'[n - 1] * 15}" for n in range(1, 5))


def test_vpc_endpoints_are_collected_and_a_partial_list_left_out(clients, capsys):
    sts_stub(clients, denied=(DENIED,))
    mine = [[instance(PublicIpAddress="198.51.100.10")], [VPC]]
    ec2_region(clients, ME, "us-east-1", [*mine, (), (), [E2, E1]])
    ec2_region(clients, ME, "eu-west-1", [[], [], (), (), [E3]])
    # The other account's role may read its networks but not its endpoints in one region.
    ec2_region(clients, f"key-of-{OTHER}", "us-east-1", [[], [VPC], (), (), [E4]])
    ec2_region(clients, f"key-of-{OTHER}", "eu-west-1",
               [[], [], (), (), (), "UnauthorizedOperation"])
    code = main(["inventory", "--regions", "us-east-1,eu-west-1", "--role-name", "R",
                 "--accounts", f"{OTHER},{DENIED}"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    document = yaml.safe_load(captured.out)
    assert document["account_vpc_endpoints"] == {ME: [E1, E2, E3]}
    assert set(document["account_networks"]) == {ME, OTHER}  # its networks are kept
    assert (f"exfilguard inventory: {OTHER} eu-west-1: VPC endpoints: UnauthorizedOperation: "
            f"not allowed; account_vpc_endpoints left out for {OTHER} (a partial list would "
            "make calls through the others findings)") in captured.err.splitlines()
    assert parse_config(document).account_vpc_endpoints == {
        ME: frozenset({E1, E2, E3})}


def test_no_endpoints_anywhere_writes_no_endpoint_section(clients, capsys):
    sts_stub(clients)
    ec2_region(clients, ME, "us-east-1", [[instance(PublicIpAddress="198.51.100.10")], [VPC]])
    assert main(["inventory", "--regions", "us-east-1"]) == 0
    assert "account_vpc_endpoints" not in capsys.readouterr().out


def test_nothing_collected_exits_1(clients, capsys):
    sts_stub(clients)
    ec2_region(clients, ME, "eu-west-1", error="UnauthorizedOperation")
    assert main(["inventory", "--regions", "eu-west-1"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and err[0].endswith("; skipped")
    assert err[1] == ("exfilguard inventory: error: nothing collected from any account or "
                      "region (see above)")


def test_no_credentials_is_one_line(clients, capsys):
    client, stub = stubbed("sts")
    stub.add_client_error("get_caller_identity", "InvalidClientTokenId", "bad token")
    stub.activate()
    clients[ME, "sts", "us-east-1"] = client
    assert main(["inventory"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "exfilguard inventory: error: sts get-caller-identity: InvalidClientTokenId: bad token "
        "(are AWS credentials set?)"]


def test_enabled_regions_leaves_out_those_not_opted_in():
    client, stub = stubbed("ec2")
    stub.add_response("describe_regions", {"Regions": [
        {"RegionName": "us-east-1", "OptInStatus": "opt-in-not-required"},
        {"RegionName": "ap-east-1", "OptInStatus": "not-opted-in"},
        {"RegionName": "af-south-1", "OptInStatus": "opted-in"}]})
    with stub:
        assert inv.enabled_regions(client) == ["af-south-1", "us-east-1"]
