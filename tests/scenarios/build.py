"""Writes ``records.jsonl`` for every scenario folder, deterministically.

Run: ``.venv/bin/python tests/scenarios/build.py``. Only the records are generated; each folder's
``expected.jsonl``, ``README.md`` and ``config.yaml`` are written by hand from the rules.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from cloudtrail_builders import (  # noqa: E402
    ATTACKER_AGENT,
    CONSOLE_AGENT,
    INSTANCE_AGENT,
    allocate_address,
    api_record,
    assign_private_ip_addresses,
    associate_address,
    assume_role,
    assumed_role_identity,
    at,
    call,
    console_login,
    delete_nat_gateway,
    disassociate_address,
    iam_user_call,
    issuance,
    nat_gateway,
    release_address,
    run_instances,
    session_call,
    start_instances,
    stop_instances,
)

OWNER = "111122223333"
ASSOCIATED = "444455556666"
STRANGER = "999988887777"
INSTANCE = "i-0123456789abcdef0"

# Addresses. Non-AWS public ones are TEST-NETs or well-known non-AWS hosts; AWS ones are in the
# shipped ip-ranges snapshot (us-east-1 EC2), checked by ``check_addresses`` below.
CORPORATE = "198.51.100.20"
ATTACKER = "45.33.32.156"
TOR_EXIT = "185.220.101.1"
OWN_PUBLIC = "3.225.16.109"  # an instance's auto-assigned public address
OTHER_EC2 = "44.192.0.5"  # somebody else's EC2 instance
AWS_ADDRESSES = ("3.225.16.109", "52.45.102.28", "54.152.0.10", "54.152.0.11", "44.192.0.5",
                 "3.80.0.7", "18.204.10.20", "34.200.1.1", "52.0.0.9", "35.170.0.1",
                 "100.24.0.9", "54.80.0.5", "52.45.102.5", "52.45.102.6", "52.45.102.20",
                 "52.45.102.7", "52.45.102.8", "2600:1f18:1234:5600::7a",
                 "2600:1f18:1234:5600::10", "2600:1f18:1234:5600:8c1f:22ab:10e3:7d41",
                 "2600:1f18:4000:ab00::5", "52.45.102.40", "52.45.102.41", "52.45.102.42")
NOT_AWS = (CORPORATE, ATTACKER, TOR_EXIT, "2a00:1450:4001:800::200e", "10.0.3.17",
           "172.31.20.30", "10.20.5.9", "192.168.1.20")

OWN_VPCE = "vpce-0a1b2c3d4e5f60718"
STRANGER_VPCE = "vpce-0f9e8d7c6b5a43210"
ASSOCIATED_VPCE = "vpce-04d5e6f7a8b9c0d1e"


def key(tag: str) -> str:
    """A temporary access key id: ASIA and 16 upper-case letters or digits."""
    body = (tag.upper() + "Q7XK2MZ5RBN4WT3P")[:16]
    assert body.isalnum(), tag
    return "ASIA" + body


class Trail:
    """One scenario's records, with event ids ``e-<scenario>-0001`` given in the order built."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.count = 0
        self.lines: list[bytes] = []

    def next_id(self) -> str:
        self.count += 1
        return f"e-{self.name}-{self.count:04d}"

    def add(self, builder: Callable[..., dict[str, Any]], **kwargs: Any) -> dict[str, Any]:
        record = builder(event_id=self.next_id(), **kwargs)
        self.record(record)
        return record

    def record(self, record: dict[str, Any]) -> None:
        self.lines.append(json.dumps(record).encode())

    def raw(self, line: bytes | str) -> None:
        self.lines.append(line.encode() if isinstance(line, str) else line)

    def write(self) -> None:
        folder = HERE / self.name
        folder.mkdir(exist_ok=True)
        (folder / "records.jsonl").write_bytes(b"\n".join(self.lines) + b"\n")


SCENARIOS: dict[str, Callable[[Trail], None]] = {}


def scenario(function: Callable[[Trail], None]) -> Callable[[Trail], None]:
    SCENARIOS[function.__name__.replace("_", "-")] = function
    return function


def issued(t: Trail, access_key: str, minutes: float = 0, instance: str = INSTANCE,
           seconds: float = 0, role: str = "web-role") -> str:
    time = at(minutes, seconds)
    t.add(issuance, time=time, instance_id=instance, access_key=access_key, role=role)
    return time


def calls(t: Trail, access_key: str, source_ip: str, times: list[tuple[float, float]],
          apis: tuple[str, ...] = ("sts:GetCallerIdentity",), instance: str = INSTANCE,
          created: str = "2024-03-01T10:00:00Z", user_agent: str = INSTANCE_AGENT,
          **kwargs: Any) -> None:
    for n, (minutes, seconds) in enumerate(times):
        t.add(call, time=at(minutes, seconds), access_key=access_key, instance_id=instance,
              source_ip=source_ip, api=apis[n % len(apis)], created=created,
              user_agent=user_agent, **kwargs)


OWN_APIS = ("sts:GetCallerIdentity", "s3:ListBuckets", "ssm:GetParameter",
            "ec2:DescribeInstances")
THIEF_APIS = ("sts:GetCallerIdentity", "iam:ListRoles", "s3:ListBuckets",
              "secretsmanager:ListSecrets", "ec2:DescribeInstances")


def thief(t: Trail, access_key: str, source_ip: str, times: list[tuple[float, float]],
          instance: str = INSTANCE, **kwargs: Any) -> None:
    calls(t, access_key, source_ip, times, THIEF_APIS, instance, user_agent=ATTACKER_AGENT,
          **kwargs)


# -- scenarios ----------------------------------------------------------------------------------


@scenario
def corporate_egress_trusted_cidr(t: Trail) -> None:
    k = key("TRUSTEDCIDR")
    issued(t, k)
    calls(t, k, OWN_PUBLIC, [(1, 0), (2, 0)], OWN_APIS)
    # A developer debugging through the corporate VPN egress, and the company's AWS-hosted proxy.
    calls(t, k, CORPORATE, [(5, 0), (6, 0)], OWN_APIS, user_agent=ATTACKER_AGENT.replace(
        "Linux/6.5.0-kali3-amd64 exe/x86_64.kali.2023", "Darwin/23.3.0 exe/x86_64"))
    calls(t, k, "3.80.0.7", [(7, 0)], OWN_APIS)
    thief(t, k, ATTACKER, [(30, 0), (31, 0)])


@scenario
def nat_gateway_egress(t: Trail) -> None:
    # Terraform builds two NAT gateways: one on an EIP allocated now, one on an older EIP.
    t.add(allocate_address, time=at(-10), public_ip="52.45.102.28",
          allocation_id="eipalloc-0aa11bb22cc33dd44")
    t.add(nat_gateway, time=at(-9), allocation_id="eipalloc-0aa11bb22cc33dd44",
          nat_gateway_id="nat-0a1a2a3a4a5a6a7a8", subnet_id="subnet-0a1b2c3d4e5f6a7b8",
          vpc_id="vpc-0abc1234def567890", private_ip="10.0.0.12")
    t.add(nat_gateway, time=at(-8), allocation_id="eipalloc-0ee55ff66aa77bb88",
          nat_gateway_id="nat-0b1b2b3b4b5b6b7b8", subnet_id="subnet-0b1c2d3e4f5a6b7c8",
          vpc_id="vpc-0abc1234def567890", private_ip="10.0.1.12", public_ip="54.152.0.10")
    k = key("NATEGRESS")
    issued(t, k)
    calls(t, k, "52.45.102.28", [(1, 0), (2, 0)], OWN_APIS)
    # The route table fails over to the NAT gateway in the other zone.
    calls(t, k, "54.152.0.10", [(20, 0), (21, 0)], OWN_APIS)
    thief(t, k, OTHER_EC2, [(40, 0), (41, 0)])


@scenario
def elastic_ip_association(t: Trail) -> None:
    k = key("EIPASSOC")
    issued(t, k)
    calls(t, k, OWN_PUBLIC, [(1, 0), (2, 0)], OWN_APIS)
    t.add(allocate_address, time=at(10), public_ip="18.204.10.20",
          allocation_id="eipalloc-0a1b2c3d4e5f60718")
    t.add(associate_address, time=at(11), allocation_id="eipalloc-0a1b2c3d4e5f60718",
          instance_id=INSTANCE, association_id="eipassoc-0123abcd4567ef890")
    calls(t, k, "18.204.10.20", [(12, 0), (15, 0)], OWN_APIS)
    thief(t, k, "34.200.1.1", [(30, 0)])


@scenario
def eip_of_other_account(t: Trail) -> None:
    # An organisation trail: two other accounts allocate EIPs.
    t.add(allocate_address, time=at(5), public_ip="35.170.0.1",
          allocation_id="eipalloc-0f00f00f00f00f00f", account=STRANGER)
    t.add(allocate_address, time=at(6), public_ip="100.24.0.9",
          allocation_id="eipalloc-0b0b0b0b0b0b0b0b0", account=ASSOCIATED)
    k = key("EIPOTHER")
    issued(t, k)
    calls(t, k, OWN_PUBLIC, [(1, 0), (2, 0)], OWN_APIS)
    thief(t, k, "35.170.0.1", [(20, 0), (21, 0)])
    thief(t, k, "100.24.0.9", [(25, 0)])


@scenario
def own_vpc_endpoint(t: Trail) -> None:
    k = key("OWNVPCE")
    issued(t, k)
    calls(t, k, "10.0.3.17", [(1, 0), (2, 0), (3, 0)],
          ("sts:GetCallerIdentity", "secretsmanager:GetSecretValue", "ssm:GetParameter"),
          vpc_endpoint_id=OWN_VPCE, vpc_endpoint_account_id=OWNER)
    calls(t, k, "10.0.3.17", [(4, 0)], ("s3:GetObject",), vpc_endpoint_id="vpce-0c0c0c0c0c0c0c0c0",
          vpc_endpoint_account_id=OWNER, data_event=True,
          request={"bucketName": "acme-web-assets", "key": "config/app.json",
                   "Host": "acme-web-assets.s3.us-east-1.amazonaws.com"})


@scenario
def foreign_vpc_endpoint_stranger(t: Trail) -> None:
    k = key("STRANGERVPCE")
    issued(t, k)
    calls(t, k, "10.0.3.17", [(1, 0), (2, 0)], OWN_APIS,
          vpc_endpoint_id=OWN_VPCE, vpc_endpoint_account_id=OWNER)
    thief(t, k, "172.31.20.30", [(15, 0), (16, 0)], vpc_endpoint_id=STRANGER_VPCE,
          vpc_endpoint_account_id=STRANGER)


@scenario
def associated_account_vpc_endpoint(t: Trail) -> None:
    k = key("ASSOCVPCE")
    issued(t, k)
    calls(t, k, "10.0.3.17", [(1, 0), (2, 0)], OWN_APIS,
          vpc_endpoint_id=OWN_VPCE, vpc_endpoint_account_id=OWNER)
    calls(t, k, "10.20.5.9", [(15, 0)], ("secretsmanager:GetSecretValue",),
          vpc_endpoint_id=ASSOCIATED_VPCE, vpc_endpoint_account_id=ASSOCIATED)


@scenario
def declared_network_own(t: Trail) -> None:
    k = key("DECLOWN")
    issued(t, k)
    calls(t, k, "52.45.102.5", [(1, 0), (2, 0)], OWN_APIS)
    calls(t, k, "52.45.102.6", [(3, 0)], OWN_APIS)
    calls(t, k, "10.0.3.17", [(4, 0)], OWN_APIS)


@scenario
def declared_network_associated(t: Trail) -> None:
    k = key("DECLASSOC")
    issued(t, k)
    calls(t, k, OWN_PUBLIC, [(1, 0), (2, 0)], OWN_APIS)
    calls(t, k, OTHER_EC2, [(15, 0)], OWN_APIS)


@scenario
def declared_network_stranger(t: Trail) -> None:
    k = key("DECLSTRANGER")
    issued(t, k)
    calls(t, k, OWN_PUBLIC, [(1, 0), (2, 0)], OWN_APIS)
    thief(t, k, "54.152.0.10", [(15, 0)])
    thief(t, k, "54.152.0.11", [(16, 0)])


@scenario
def declared_owner_authoritative(t: Trail) -> None:
    k = key("DECLAUTH")
    issued(t, k)
    calls(t, k, "52.45.102.20", [(1, 0), (2, 0)], OWN_APIS)
    thief(t, k, OWN_PUBLIC, [(15, 0)])
    calls(t, k, "52.45.102.20", [(16, 0)], OWN_APIS)


@scenario
def declared_owner_ignores_learned_eip(t: Trail) -> None:
    t.add(allocate_address, time=at(-5), public_ip="18.204.10.20",
          allocation_id="eipalloc-0d0d0d0d0d0d0d0d0")
    t.add(associate_address, time=at(-4), allocation_id="eipalloc-0d0d0d0d0d0d0d0d0",
          instance_id=INSTANCE, association_id="eipassoc-0d0d0d0d0d0d0d0d0")
    k = key("DECLEIP")
    issued(t, k)
    calls(t, k, "52.45.102.20", [(1, 0)], OWN_APIS)
    calls(t, k, "18.204.10.20", [(5, 0)], OWN_APIS)


@scenario
def service_on_behalf(t: Trail) -> None:
    k = key("ONBEHALF")
    issued(t, k)
    calls(t, k, OWN_PUBLIC, [(1, 0)], OWN_APIS)
    # CloudFormation creating a stack's bucket with the caller's credentials (forward access).
    calls(t, k, "cloudformation.amazonaws.com", [(2, 0)], ("s3:CreateBucket",),
          invoked_by="cloudformation.amazonaws.com", user_agent="cloudformation.amazonaws.com",
          request={"bucketName": "acme-web-stack-logs", "Host": "s3.amazonaws.com"})
    calls(t, k, "secretsmanager.amazonaws.com", [(3, 0)], ("kms:Decrypt",),
          invoked_by="secretsmanager.amazonaws.com", user_agent="secretsmanager.amazonaws.com",
          request={"encryptionAlgorithm": "SYMMETRIC_DEFAULT",
                   "encryptionContext": {"SecretARN": "arn:aws:secretsmanager:us-east-1:"
                                         "111122223333:secret:db-password-AbCdEf"}})
    calls(t, k, "athena.amazonaws.com", [(4, 0)], ("s3:GetBucketLocation",),
          invoked_by="athena.amazonaws.com", user_agent="athena.amazonaws.com",
          request={"bucketName": "acme-athena-results", "location": ""})
    calls(t, k, "AWS Internal", [(5, 0)], ("kms:GenerateDataKey",),
          user_agent="AWS Internal", request={"keySpec": "AES_256",
                                              "keyId": "alias/aws/ssm"})


@scenario
def non_instance_sessions(t: Trail) -> None:
    # The EC2 instance identity role: AWS's own, carries the delivery marker, not ours to judge.
    t.add(session_call, time=at(1), role="aws:ec2-instance", session=INSTANCE,
          access_key=key("IDENTITYROLE"), source_ip=ATTACKER, delivery="2.0")
    t.add(session_call, time=at(2), role="ecs-task-orders", access_key=key("ECSTASK"),
          session="3b5c2e8f9a1d4e6f8b7c6d5e4f3a2b1c", source_ip=ATTACKER,
          api="s3:ListBuckets")
    t.add(session_call, time=at(3), role="orders-lambda-role", access_key=key("LAMBDA"),
          session="orders-handler", source_ip=ATTACKER, api="dynamodb:ListTables")
    t.add(session_call, time=at(4), role="eks-irsa-s3-reader", access_key=key("IRSA"),
          session="botocore-session-1709287200", source_ip=ATTACKER, api="s3:ListBuckets",
          web_identity={"federatedProvider": "arn:aws:iam::111122223333:oidc-provider/oidc.eks."
                        "us-east-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE",
                        "attributes": {}})
    t.add(session_call, time=at(5), role="AWSReservedSSO_AdministratorAccess_0a1b2c3d4e5f6a7b",
          access_key=key("SSOALICE"), session="alice@example.com", source_ip=TOR_EXIT,
          api="iam:ListUsers")
    t.add(iam_user_call, time=at(6), user="deploy-bot", access_key="AKIAQX7DEPLOYBOT0001",
          source_ip=ATTACKER, api="s3:ListBuckets")
    # A person assumes the web role and names the session like an instance: no issuance by EC2,
    # no delivery marker.
    human_key = key("HUMANI")
    t.add(iam_user_call, time=at(7), user="deploy-bot", access_key="AKIAQX7DEPLOYBOT0001",
          source_ip=ATTACKER, api="sts:AssumeRole",
          request={"roleArn": "arn:aws:iam::111122223333:role/web-role",
                   "roleSessionName": "i-0fedcba9876543210"},
          response={"credentials": {"accessKeyId": human_key,
                                    "sessionToken": "IQoJb3JpZ2luX2VjEHumanSessionToken",
                                    "expiration": "Mar 1, 2024, 11:07:00 AM"},
                    "assumedRoleUser": {
                        "assumedRoleId": "AROAMPQROMQLMCESPSCTS:i-0fedcba9876543210",
                        "arn": "arn:aws:sts::111122223333:assumed-role/web-role/"
                               "i-0fedcba9876543210"}})
    t.add(session_call, time=at(8), role="web-role", access_key=human_key,
          session="i-0fedcba9876543210", source_ip=ATTACKER, api="s3:ListBuckets",
          created=at(7))
    t.add(session_call, time=at(9), role="web-role", access_key=human_key,
          session="i-0fedcba9876543210", source_ip=ATTACKER, api="secretsmanager:ListSecrets",
          created=at(7))


@scenario
def two_keys_one_instance(t: Trail) -> None:
    v1, v2 = key("IMDSVONE"), key("IMDSVTWO")
    issued(t, v1)
    issued(t, v2, seconds=2)
    calls(t, v2, "54.80.0.5", [(1, 0), (2, 0)], OWN_APIS, delivery="2.0")
    # The IMDSv1 key, stolen through an SSRF, is first used by the thief's own EC2 instance.
    thief(t, v1, OTHER_EC2, [(10, 0)], delivery="1.0")
    calls(t, v1, "54.80.0.5", [(12, 0)], OWN_APIS, delivery="1.0")
    calls(t, v2, "54.80.0.5", [(13, 0)], OWN_APIS, delivery="2.0")


@scenario
def key_issued_before_job(t: Trail) -> None:
    k = key("BEFOREJOB")
    created = "2024-03-01T08:12:44Z"
    calls(t, k, "54.152.0.10", [(0, 0), (1, 0)], OWN_APIS, created=created)
    thief(t, k, TOR_EXIT, [(3, 0), (20, 0)], created=created)
    calls(t, k, "54.152.0.10", [(30, 0)], OWN_APIS, created=created)


@scenario
def ipv6_outside(t: Trail) -> None:
    k = key("IPVSIXOUT")
    issued(t, k)
    calls(t, k, "2600:1f18:1234:5600::10", [(1, 0), (2, 0)], OWN_APIS)
    thief(t, k, "2a00:1450:4001:800::200e", [(20, 0)])


@scenario
def ipv6_own_learned(t: Trail) -> None:
    k = key("IPVSIXOWN")
    issued(t, k)
    calls(t, k, "2600:1f18:1234:5600:8c1f:22ab:10e3:7d41", [(1, 0), (2, 0), (3, 0), (9, 0)],
          OWN_APIS)
    thief(t, k, "2600:1f18:4000:ab00::5", [(20, 0)])


@scenario
def many_calls_one_attacker(t: Trail) -> None:
    k = key("MANYCALLS")
    issued(t, k)
    calls(t, k, OWN_PUBLIC, [(1, 0), (2, 0)], OWN_APIS)
    thief(t, k, ATTACKER, [(10, 7 * n) for n in range(50)])
    thief(t, k, TOR_EXIT, [(20, 0), (20, 30), (21, 0)])


@scenario
def duplicate_delivery(t: Trail) -> None:
    k = key("DUPLICATE")
    issued(t, k)
    calls(t, k, OWN_PUBLIC, [(1, 0)], OWN_APIS)
    thief(t, k, ATTACKER, [(10, 5 * n) for n in range(10)])
    # CloudTrail delivers the eighth call a second time (same eventID, same bytes).
    t.raw(t.lines[9])


def _instance_identity(access_key: str, instance: str = INSTANCE) -> dict[str, Any]:
    return assumed_role_identity(account=OWNER, role="web-role", session=instance,
                                 access_key=access_key, created="2024-03-01T10:00:00Z",
                                 delivery="2.0")


@scenario
def hostile_lines(t: Trail) -> None:
    k = key("HOSTILE")
    issued(t, k)
    calls(t, k, OWN_PUBLIC, [(1, 0)], OWN_APIS)
    t.raw("this is not json at all")
    t.raw("[1, 2, 3]")
    t.raw('"just a string"')
    t.raw("null")
    t.raw("42")
    thief(t, k, ATTACKER, [(10, 0)])
    # A record cut off mid-way (a truncated upload), by the thief's address.
    cut = call(event_id=t.next_id(), time=at(10, 30), access_key=k, instance_id=INSTANCE,
               source_ip=ATTACKER, api="iam:ListRoles")
    t.raw(json.dumps(cut)[:300])
    # Script in the source address field of an instance-credential call: bad input.
    t.add(call, time=at(11), access_key=k, instance_id=INSTANCE,
          source_ip="<script>alert(1)</script>", api="s3:ListBuckets", user_agent=ATTACKER_AGENT)
    # An event time nobody can place, from another address.
    bad_time = call(event_id=t.next_id(), time=at(11, 30), access_key=k, instance_id=INSTANCE,
                    source_ip=TOR_EXIT, api="s3:ListBuckets", user_agent=ATTACKER_AGENT)
    bad_time["eventTime"] = "yesterday"
    t.record(bad_time)
    # Wrong types where objects and strings belong, on instance-looking records.
    t.raw(json.dumps({"eventVersion": "1.08", "eventName": 7, "userIdentity": {
        "arn": "arn:aws:sts::111122223333:assumed-role/web-role/i-0123456789abcdef0"},
        "eventID": t.next_id()}))
    t.raw(json.dumps({"eventVersion": "1.08", "eventName": "ListBuckets",
                      "userIdentity": "arn:aws:sts::111122223333:assumed-role/web-role/"
                                      "i-0123456789abcdef0",
                      "sourceIPAddress": ATTACKER, "eventTime": at(12), "eventID": t.next_id()}))
    # A legitimate thief's call with a large (200 KB, under CloudTrail's 256 KB) request field.
    t.add(call, time=at(12, 30), access_key=k, instance_id=INSTANCE, source_ip=ATTACKER,
          api="ssm:SendCommand", user_agent=ATTACKER_AGENT,
          request={"documentName": "AWS-RunShellScript", "instanceIds": ["i-0aaaabbbbccccdddd"],
                   "parameters": {"commands": ["echo " + "A" * 200_000]}})
    # An enormous (1.1 MB) record from the instance's own address: far beyond any real record.
    t.add(call, time=at(13), access_key=k, instance_id=INSTANCE, source_ip=OWN_PUBLIC,
          api="s3:ListBuckets", user_agent="Boto3/1.34.51 " + "x" * 1_100_000)
    thief(t, k, ATTACKER, [(14, 0)])
    t.raw("}{")


@scenario
def hostile_undecodable_lines(t: Trail) -> None:
    k = key("UNDECODABLE")
    issued(t, k)
    calls(t, k, OWN_PUBLIC, [(1, 0)], OWN_APIS)
    # An instance-session record nested 50,000 levels deep (100 KB: small, but deep).
    prefix = json.dumps(call(event_id=t.next_id(), time=at(2), access_key=k, instance_id=INSTANCE,
                             source_ip=OWN_PUBLIC, api="s3:ListBuckets"))[:-1]
    t.raw(prefix + ', "additionalEventData": ' + "[" * 50_000 + "]" * 50_000 + "}")
    # Bytes that are not UTF-8 inside an instance-session record.
    t.raw(b'{"eventVersion": "1.08", "userIdentity": {"type": "AssumedRole", "arn": '
          b'"arn:aws:sts::111122223333:assumed-role/web-role/i-0123456789abcdef0"}, '
          b'"eventName": "ListBuckets", "sourceIPAddress": "\xff\xfe\xfd", "eventID": "'
          + t.next_id().encode() + b'"}')
    thief(t, k, ATTACKER, [(10, 0), (11, 0)])


@scenario
def uppercase_instance_id(t: Trail) -> None:
    big, small = "I-0ABC123DEF4567890", "I-1A2B3C4D"
    k1, k2 = key("UPPERLONG"), key("UPPERSHORT")
    issued(t, k1, instance=big)
    issued(t, k2, instance=small, seconds=30)
    calls(t, k1, OWN_PUBLIC, [(1, 0), (2, 0)], OWN_APIS, instance=big)
    calls(t, k2, "52.0.0.9", [(1, 30), (2, 30)], OWN_APIS, instance=small)
    thief(t, k1, ATTACKER, [(10, 0)], instance=big)
    thief(t, k2, "34.200.1.1", [(11, 0)], instance=small)


@scenario
def suppression_rule(t: Trail) -> None:
    k = key("SUPPRESS")
    issued(t, k)
    calls(t, k, OWN_PUBLIC, [(1, 0), (2, 0)], OWN_APIS)
    thief(t, k, TOR_EXIT, [(10, 0), (10, 30)])  # the red team's contracted exit
    thief(t, k, ATTACKER, [(12, 0)])  # a real thief
    thief(t, k, OTHER_EC2, [(14, 0)])  # the partner's scanner, from its EC2 instance


@scenario
def late_issuance(t: Trail) -> None:
    # Calls without the delivery marker (as in older trails): only the issuance ties them.
    k = key("LATEISSUE")
    calls(t, k, OWN_PUBLIC, [(1, 0), (2, 0)], OWN_APIS, delivery=None)
    thief(t, k, ATTACKER, [(3, 0), (4, 0)], delivery=None)
    issued(t, k)  # written last, event time 10:00:00


@scenario
def issuance_logged_after_first_call(t: Trail) -> None:
    # STS's clock is a few seconds ahead: the issuance is stamped after the first call it made.
    k = key("SKEWISSUE")
    calls(t, k, OWN_PUBLIC, [(0, 2)], OWN_APIS, delivery=None)
    issued(t, k, seconds=6)
    calls(t, k, OWN_PUBLIC, [(1, 0)], OWN_APIS, delivery=None)
    thief(t, k, OTHER_EC2, [(10, 0)], delivery=None)


@scenario
def private_address_without_endpoint(t: Trail) -> None:
    k = key("PRIVNOVPCE")
    issued(t, k)
    calls(t, k, OWN_PUBLIC, [(1, 0)], OWN_APIS)
    thief(t, k, "10.0.3.17", [(10, 0), (11, 0)])
    thief(t, k, "192.168.1.20", [(12, 0)])


@scenario
def stop_start_relearn(t: Trail) -> None:
    k1, k2 = key("BEFORESTOP"), key("AFTERSTART")
    issued(t, k1)
    calls(t, k1, OWN_PUBLIC, [(1, 0), (30, 0)], OWN_APIS)
    t.add(stop_instances, time=at(60), instance_ids=[INSTANCE])
    t.add(start_instances, time=at(70), instance_ids=[INSTANCE])
    issued(t, k2, minutes=71)
    calls(t, k2, "52.0.0.9", [(72, 0), (80, 0)], OWN_APIS, created=at(71))
    # The stolen pre-stop key, used from the instance's old address (now someone else's).
    thief(t, k1, OWN_PUBLIC, [(90, 0)])


@scenario
def instance_associates_own_eip(t: Trail) -> None:
    # The instance's boot script allocates an EIP and associates it with itself, using its role.
    k = key("SELFEIP")
    issued(t, k)
    me = _instance_identity(k)
    t.add(allocate_address, time=at(1), public_ip="18.204.10.20",
          allocation_id="eipalloc-05e1f2a3b4c5d6e7f", identity=me, source_ip=OWN_PUBLIC)
    t.add(associate_address, time=at(1, 5), allocation_id="eipalloc-05e1f2a3b4c5d6e7f",
          instance_id=INSTANCE, association_id="eipassoc-05e1f2a3b4c5d6e7f", identity=me,
          source_ip=OWN_PUBLIC)
    calls(t, k, "18.204.10.20", [(2, 0), (5, 0), (9, 0)], OWN_APIS)


@scenario
def pending_key_learning_order(t: Trail) -> None:
    # Key A was issued before the job started (no issuance in the input, delivery marker set);
    # key B is issued at 10:01 and stolen at once.
    a, b = key("PENDINGA"), key("PENDINGB")
    calls(t, a, "54.152.0.10", [(0, 0)], OWN_APIS, created="2024-03-01T07:40:12Z")
    issued(t, b, minutes=1)
    thief(t, b, OWN_PUBLIC, [(2, 0)], created=at(1))
    calls(t, b, "54.152.0.10", [(3, 0)], OWN_APIS, created=at(1))
    calls(t, a, "54.152.0.10", [(6, 0)], OWN_APIS, created="2024-03-01T07:40:12Z")


@scenario
def same_millisecond_order(t: Trail) -> None:
    # The instance stops itself (its own role, from its own address) in the millisecond a call
    # with its key comes from another AWS address; the file has the stop first. The one order
    # key (event time, kind, event id) judges the call first, in detect and in the stream.
    k = key("SAMEMS")
    issued(t, k)
    calls(t, k, OWN_PUBLIC, [(1, 0)], OWN_APIS)
    thief(t, k, OTHER_EC2, [(20, 0)])
    stop = stop_instances(event_id=t.next_id(), time=at(20), instance_ids=[INSTANCE])
    stop["userIdentity"] = _instance_identity(k)
    stop["sourceIPAddress"] = OWN_PUBLIC
    t.lines.insert(len(t.lines) - 1, json.dumps(stop).encode())


def check_addresses() -> None:
    sys.path.insert(0, str(HERE.parent.parent))
    from streams.aws.ipranges import load_ip_ranges

    ranges = load_ip_ranges()
    for address in AWS_ADDRESSES:
        assert ranges.lookup(address) is not None, address
    for address in NOT_AWS:
        assert ranges.lookup(address) is None, address


# -- key lineage --------------------------------------------------------------------------------


def instance_identity(access_key: str, delivery: str | None = "2.0") -> dict[str, Any]:
    return assumed_role_identity(account=OWNER, role="web-role", session=INSTANCE,
                                 access_key=access_key, created="2024-03-01T10:00:00Z",
                                 delivery=delivery)


def role_identity(access_key: str, role: str, session: str, account: str = OWNER,
                  minutes: float = 0) -> dict[str, Any]:
    return assumed_role_identity(account=account, role=role, session=session,
                                 access_key=access_key, created=at(minutes))


def minted(t: Trail, signer: dict[str, Any], source_ip: str, child: str, role_arn: str,
           session: str, minutes: float, user_agent: str = ATTACKER_AGENT) -> None:
    t.add(assume_role, time=at(minutes), identity=signer, source_ip=source_ip, child_key=child,
          role_arn=role_arn, session=session, user_agent=user_agent)


def derived_calls(t: Trail, identity: dict[str, Any], source_ip: str,
                  times: list[tuple[float, float]], apis: tuple[str, ...] = THIEF_APIS,
                  user_agent: str = ATTACKER_AGENT) -> None:
    for n, (minutes, seconds) in enumerate(times):
        t.add(api_record, time=at(minutes, seconds), identity=identity, source_ip=source_ip,
              api=apis[n % len(apis)], user_agent=user_agent, account=identity["accountId"])


@scenario
def lineage_one_hop(t: Trail) -> None:
    k, child = key("HOPONE"), key("HOPONECHILD")
    issued(t, k)
    calls(t, k, OWN_PUBLIC, [(1, 0), (2, 0)], OWN_APIS)
    # Pacu's first move with the stolen key: a session of a more useful role, named its own way.
    minted(t, instance_identity(k), ATTACKER, child,
           f"arn:aws:iam::{OWNER}:role/admin-role", "pacu-session", 10)
    derived_calls(t, role_identity(child, "admin-role", "pacu-session", minutes=10), ATTACKER,
                  [(11, 0), (12, 0), (13, 0)])


@scenario
def lineage_two_hops(t: Trail) -> None:
    k, first, second = key("HOPTWO"), key("HOPTWOFIRST"), key("HOPTWOSECOND")
    issued(t, k)
    calls(t, k, OWN_PUBLIC, [(1, 0), (2, 0)], OWN_APIS)
    minted(t, instance_identity(k), ATTACKER, first,
           f"arn:aws:iam::{OWNER}:role/ci-role", "ci", 10)
    minted(t, role_identity(first, "ci-role", "ci", minutes=10), ATTACKER, second,
           f"arn:aws:iam::{OWNER}:role/admin-role", "admin", 11)
    # The last key is used from an EC2 box the thief rents.
    derived_calls(t, role_identity(second, "admin-role", "admin", minutes=11), OTHER_EC2,
                  [(12, 0), (13, 0)])


@scenario
def lineage_cross_account_duplicate(t: Trail) -> None:
    k, child = key("XACCOUNT"), key("XACCOUNTCHILD")
    role_arn = f"arn:aws:iam::{STRANGER}:role/deploy-role"
    # The role account's trail arrives first: the child's calls before either AssumeRole copy.
    derived_calls(t, role_identity(child, "deploy-role", "deploy", STRANGER, minutes=10),
                  ATTACKER, [(11, 0), (12, 0)])
    issued(t, k)
    calls(t, k, OWN_PUBLIC, [(1, 0), (2, 0)], OWN_APIS)
    shared = "7f3e2d1c-0b9a-4876-9543-210fedcba987"
    for recipient in (STRANGER, OWNER):  # one copy in each account's trail
        t.add(assume_role, time=at(10), identity=instance_identity(k), source_ip=ATTACKER,
              child_key=child, role_arn=role_arn, session="deploy", user_agent=ATTACKER_AGENT,
              recipient=recipient, shared_event_id=shared)


@scenario
def lineage_benign_chain_then_stolen_child(t: Trail) -> None:
    k, child = key("BENIGNCHAIN"), key("BENIGNCHILD")
    issued(t, k)
    calls(t, k, OWN_PUBLIC, [(1, 0), (2, 0)], OWN_APIS)
    # The nightly report job chains into the reporting role from the instance itself.
    minted(t, instance_identity(k), OWN_PUBLIC, child,
           f"arn:aws:iam::{ASSOCIATED}:role/report-role", "nightly-report", 3,
           user_agent=INSTANCE_AGENT)
    report = role_identity(child, "report-role", "nightly-report", ASSOCIATED, minutes=3)
    derived_calls(t, report, OWN_PUBLIC, [(4, 0), (5, 0)], ("s3:ListBuckets", "s3:GetObject"),
                  user_agent=INSTANCE_AGENT)
    # The child key, read from the job's environment, is used from outside.
    derived_calls(t, report, TOR_EXIT, [(30, 0), (31, 0), (32, 0)])


@scenario
def console_pivot(t: Trail) -> None:
    k = key("CONSOLEPIV")
    issued(t, k)
    calls(t, k, OWN_PUBLIC, [(1, 0), (2, 0)], OWN_APIS)
    # aws_consoler: a sign-in token for the stolen session, then the console under its ARN.
    t.add(call, time=at(10), access_key=k, instance_id=INSTANCE, source_ip=ATTACKER,
          api="signin:GetSigninToken", user_agent=ATTACKER_AGENT)
    t.add(console_login, time=at(10, 30), role="web-role", session=INSTANCE,
          source_ip=ATTACKER)
    # The console signs with keys EC2 never delivered; some services say so, some do not.
    for n, (console_key, api) in enumerate(((key("CONSOLEONE"), "iam:ListRoles"),
                                            (key("CONSOLETWO"), "s3:ListBuckets"),
                                            (key("CONSOLEONE"), "ec2:DescribeInstances"))):
        record = t.add(call, time=at(11 + n), access_key=console_key, instance_id=INSTANCE,
                       source_ip=ATTACKER, api=api, delivery=None,
                       user_agent="AWS Internal" if n == 1 else CONSOLE_AGENT)
        if n != 1:
            attributes = record["userIdentity"]["sessionContext"]["attributes"]
            attributes["sessionCredentialFromConsole"] = "true"
            t.lines[-1] = json.dumps(record).encode()


# -- addresses proven by CloudTrail --------------------------------------------------------------


@scenario
def proven_eip_thief_first(t: Trail) -> None:
    k = key("PROVENEIP")
    issued(t, k)
    t.add(allocate_address, time=at(1), public_ip="52.45.102.5",
          allocation_id="eipalloc-0c1c2c3c4c5c6c7c8")
    t.add(associate_address, time=at(2), allocation_id="eipalloc-0c1c2c3c4c5c6c7c8",
          instance_id=INSTANCE, association_id="eipassoc-0c1c2c3c4c5c6c7c8")
    # The key, stolen at boot, is used from the thief's own EC2 box before the instance calls.
    thief(t, k, OTHER_EC2, [(3, 0), (4, 0)])
    calls(t, k, "52.45.102.5", [(5, 0), (6, 0)], OWN_APIS)


@scenario
def proven_ipv6_with_nat_ipv4(t: Trail) -> None:
    t.add(allocate_address, time=at(-10), public_ip="52.45.102.6",
          allocation_id="eipalloc-0d1d2d3d4d5d6d7d8")
    t.add(nat_gateway, time=at(-9), allocation_id="eipalloc-0d1d2d3d4d5d6d7d8",
          nat_gateway_id="nat-0d1d2d3d4d5d6d7d8", subnet_id="subnet-0d1c2d3e4f5a6b7c8",
          vpc_id="vpc-0abc1234def567890", private_ip="10.0.2.12")
    t.add(run_instances, time=at(-1), instance_id=INSTANCE, private_ip="10.0.3.17",
          ipv6="2600:1f18:1234:5600:8c1f:22ab:10e3:7d41")
    k = key("DUALSTACK")
    issued(t, k)
    # IPv4 through the NAT gateway, IPv6 from the instance's own address: one instance.
    calls(t, k, "52.45.102.6", [(1, 0), (2, 0)], OWN_APIS)
    calls(t, k, "2600:1f18:1234:5600:8c1f:22ab:10e3:7d41", [(3, 0), (4, 0)], OWN_APIS)
    thief(t, k, "2600:1f18:4000:ab00::5", [(20, 0)])


@scenario
def key_rotation_keeps_address(t: Trail) -> None:
    first, second = key("ROTATEONE"), key("ROTATETWO")
    issued(t, first)
    calls(t, first, OWN_PUBLIC, [(1, 0), (2, 0)], OWN_APIS)
    # IMDS hands out the next key hours later: the instance's learned address carries over.
    issued(t, second, minutes=300)
    calls(t, second, OWN_PUBLIC, [(301, 0), (302, 0)], OWN_APIS)
    thief(t, second, OTHER_EC2, [(310, 0)])


@scenario
def proven_ipv6_assigned_with_nat_ipv4(t: Trail) -> None:
    t.add(allocate_address, time=at(-10), public_ip="52.45.102.7",
          allocation_id="eipalloc-0e1e2e3e4e5e6e7e8")
    t.add(nat_gateway, time=at(-9), allocation_id="eipalloc-0e1e2e3e4e5e6e7e8",
          nat_gateway_id="nat-0e1e2e3e4e5e6e7e8", subnet_id="subnet-0e1c2d3e4f5a6b7c8",
          vpc_id="vpc-0abc1234def567890", private_ip="10.0.2.13", public_ip="52.45.102.7")
    # Launched IPv4-only; Terraform gives its interface a secondary private address.
    t.add(run_instances, time=at(-2), instance_id=INSTANCE, private_ip="10.0.3.18",
          interface_id="eni-0e1e2e3e4e5e6e7e8")
    t.add(assign_private_ip_addresses, time=at(-1), interface_id="eni-0e1e2e3e4e5e6e7e8",
          private_ips=["10.0.3.40"])
    k = key("ASSIGNSIX")
    issued(t, k)
    # The instance asks for an IPv6 address itself (through the NAT gateway): proven its own.
    t.add(call, time=at(0, 30), access_key=k, instance_id=INSTANCE, source_ip="52.45.102.7",
          api="ec2:AssignIpv6Addresses",
          request={"AssignIpv6AddressesRequest": {"NetworkInterfaceId": "eni-0e1e2e3e4e5e6e7e8",
                                                  "Ipv6AddressCount": 1}},
          response={"AssignIpv6AddressesResponse": {
              "xmlns": "http://ec2.amazonaws.com/doc/2016-11-15/",
              "requestId": "5f3c9e1a-7b2d-4c8e-9a01-2b3c4d5e6f70",
              "networkInterfaceId": "eni-0e1e2e3e4e5e6e7e8",
              "assignedIpv6Addresses": {"item": ["2600:1f18:1234:5600::7a"]}}})
    # The key, stolen, is used from another AWS IPv6 address before the instance's IPv6 calls.
    thief(t, k, "2600:1f18:4000:ab00::5", [(1, 0), (1, 30)])
    calls(t, k, "52.45.102.7", [(2, 0), (3, 0)], OWN_APIS)
    calls(t, k, "2600:1f18:1234:5600::7a", [(4, 0), (5, 0)], OWN_APIS)


@scenario
def dual_stack_learned_per_family(t: Trail) -> None:
    t.add(allocate_address, time=at(-10), public_ip="52.45.102.8",
          allocation_id="eipalloc-0f1f2f3f4f5f6f7f8")
    t.add(nat_gateway, time=at(-9), allocation_id="eipalloc-0f1f2f3f4f5f6f7f8",
          nat_gateway_id="nat-0f1f2f3f4f5f6f7f8", subnet_id="subnet-0f1c2d3e4f5a6b7c8",
          vpc_id="vpc-0abc1234def567890", private_ip="10.0.2.14")
    k = key("DUALLEARN")
    # Launched before the job: no RunInstances, so each family's first address is learned.
    issued(t, k)
    calls(t, k, "52.45.102.8", [(1, 0), (2, 0)], OWN_APIS)
    calls(t, k, "2600:1f18:1234:5600::10", [(3, 0), (4, 0)], OWN_APIS)
    calls(t, k, "52.45.102.8", [(5, 0)], OWN_APIS)
    thief(t, k, "2600:1f18:4000:ab00::5", [(20, 0)])
    thief(t, k, OTHER_EC2, [(21, 0), (22, 0)])


# -- addresses given back ------------------------------------------------------------------------


@scenario
def eip_released_reused_by_stranger(t: Trail) -> None:
    k = key("EIPRELEASED")
    issued(t, k)
    calls(t, k, OWN_PUBLIC, [(1, 0), (2, 0)], OWN_APIS)
    t.add(allocate_address, time=at(5), public_ip="52.45.102.40",
          allocation_id="eipalloc-0e1e2e3e4e5e6e7e8")
    t.add(associate_address, time=at(6), allocation_id="eipalloc-0e1e2e3e4e5e6e7e8",
          instance_id=INSTANCE, association_id="eipassoc-0e1e2e3e4e5e6e7e8")
    calls(t, k, "52.45.102.40", [(7, 0), (8, 0)], OWN_APIS)
    # Disassociated (the address stays the account's), then released: back in AWS's pool.
    t.add(disassociate_address, time=at(10), association_id="eipassoc-0e1e2e3e4e5e6e7e8")
    calls(t, k, OWN_PUBLIC, [(11, 0)], OWN_APIS)
    t.add(release_address, time=at(12), allocation_id="eipalloc-0e1e2e3e4e5e6e7e8")
    # A stranger, in no account of this trail, is given the address and uses the stolen key.
    thief(t, k, "52.45.102.40", [(30, 0), (31, 0)])


@scenario
def eip_released_moves_to_other_account(t: Trail) -> None:
    k = key("EIPMOVES")
    issued(t, k)
    t.add(allocate_address, time=at(2), public_ip="52.45.102.41",
          allocation_id="eipalloc-0f1f2f3f4f5f6f7f8")
    t.add(associate_address, time=at(3), allocation_id="eipalloc-0f1f2f3f4f5f6f7f8",
          instance_id=INSTANCE, association_id="eipassoc-0f1f2f3f4f5f6f7f8")
    calls(t, k, "52.45.102.41", [(4, 0), (5, 0)], OWN_APIS)
    t.add(disassociate_address, time=at(10), association_id="eipassoc-0f1f2f3f4f5f6f7f8")
    t.add(release_address, time=at(11), allocation_id="eipalloc-0f1f2f3f4f5f6f7f8")
    # An organisation trail: another account allocates the released address.
    t.add(allocate_address, time=at(20), public_ip="52.45.102.41",
          allocation_id="eipalloc-0a9a8a7a6a5a4a3a2", account=STRANGER)
    thief(t, k, "52.45.102.41", [(30, 0)])


@scenario
def nat_gateway_deleted(t: Trail) -> None:
    # A NAT gateway on an elastic IP allocated before the trail: its response names the address.
    t.add(nat_gateway, time=at(-9), allocation_id="eipalloc-0b9b8b7b6b5b4b3b2",
          nat_gateway_id="nat-0c1c2c3c4c5c6c7c8", subnet_id="subnet-0c1c2d3e4f5a6b7c8",
          vpc_id="vpc-0abc1234def567890", private_ip="10.0.4.12", public_ip="52.45.102.42")
    k = key("NATDELETED")
    issued(t, k)
    calls(t, k, "52.45.102.42", [(1, 0), (2, 0)], OWN_APIS)
    # Terraform replaces the gateway on the same elastic IP: deleting it releases nothing.
    t.add(delete_nat_gateway, time=at(10), nat_gateway_id="nat-0c1c2c3c4c5c6c7c8")
    t.add(nat_gateway, time=at(11), allocation_id="eipalloc-0b9b8b7b6b5b4b3b2",
          nat_gateway_id="nat-0d9d8d7d6d5d4d3d2", subnet_id="subnet-0c1c2d3e4f5a6b7c8",
          vpc_id="vpc-0abc1234def567890", private_ip="10.0.4.13")
    calls(t, k, "52.45.102.42", [(12, 0), (13, 0)], OWN_APIS)
    # Then destroys it, and its elastic IP with it.
    t.add(delete_nat_gateway, time=at(20), nat_gateway_id="nat-0d9d8d7d6d5d4d3d2")
    t.add(release_address, time=at(21), allocation_id="eipalloc-0b9b8b7b6b5b4b3b2")
    thief(t, k, "52.45.102.42", [(30, 0), (31, 0)])


# -- VPC endpoints CloudTrail names no owner for -------------------------------------------------


@scenario
def unknown_endpoint_declared(t: Trail) -> None:
    k = key("VPCEDECLARED")
    issued(t, k)
    # Older records: the endpoint, no vpcEndpointAccountId. The owner's is declared in config.
    calls(t, k, "10.0.3.17", [(1, 0), (2, 0)], ("secretsmanager:GetSecretValue",),
          vpc_endpoint_id=OWN_VPCE)
    # The thief's endpoint, in a VPC whose range overlaps the owner's: the endpoint decides.
    thief(t, k, "10.0.3.99", [(10, 0), (11, 0)], vpc_endpoint_id=STRANGER_VPCE)


@scenario
def unknown_endpoint_learned(t: Trail) -> None:
    k = key("VPCELEARNED")
    issued(t, k)
    # S3 names the endpoint's owner: the owner's endpoint is learned; STS does not name it.
    calls(t, k, "10.0.3.17", [(1, 0)], ("s3:GetObject",), vpc_endpoint_id=OWN_VPCE,
          vpc_endpoint_account_id=OWNER)
    calls(t, k, "10.0.3.17", [(2, 0)], OWN_APIS, vpc_endpoint_id=OWN_VPCE)
    thief(t, k, "172.31.20.30", [(10, 0)], vpc_endpoint_id=STRANGER_VPCE)


@scenario
def unknown_endpoint_nothing_known(t: Trail) -> None:
    k = key("VPCEUNKNOWN")
    issued(t, k)
    # Nothing known of the owner's endpoints: today's verdict (none), counted in a metric.
    calls(t, k, "10.0.3.17", [(1, 0), (2, 0)], OWN_APIS, vpc_endpoint_id=OWN_VPCE)
    thief(t, k, "10.20.5.9", [(10, 0)], vpc_endpoint_id=STRANGER_VPCE)


def main() -> None:
    check_addresses()
    for name, build in SCENARIOS.items():
        trail = Trail(name)
        build(trail)
        trail.write()
        print(f"{name}: {len(trail.lines)} lines")


if __name__ == "__main__":
    main()
