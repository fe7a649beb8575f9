"""Helpers for the tests on moto's server: the commands run against it, clients of it as any
account, and ``World``, what the setup built, so the tests know which accounts and CIDRs to
expect."""

from __future__ import annotations

import ipaddress
import os
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import boto3

EXFILGUARD = str(Path(sys.executable).with_name("exfilguard"))
MANAGEMENT = "123456789012"  # moto's default account: the credentials' own
ROLE = "ExfilguardInventory"
DEFAULT_VPC = "172.31.0.0/16"  # moto, like AWS, gives every account and region a default VPC
# Variables that could lead a client to a real account: none of them reaches the commands.
LEAKY = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN",
         "AWS_REGION", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE",
         "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(aws_env: dict, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in LEAKY}
    return subprocess.run([EXFILGUARD, *args], env={**env, **aws_env}, capture_output=True,
                          text=True, timeout=300, check=False)


def client(aws_env: dict, service: str, region: str = "us-east-1", account: str = MANAGEMENT):
    """A client of moto as the management account, or as ``account`` through the role."""
    kwargs = {"endpoint_url": aws_env["AWS_ENDPOINT_URL"], "region_name": region,
              "aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
    if account != MANAGEMENT:
        sts = boto3.client("sts", **kwargs)
        credentials = sts.assume_role(RoleArn=f"arn:aws:iam::{account}:role/{ROLE}",
                                      RoleSessionName="setup")["Credentials"]
        kwargs.update(aws_access_key_id=credentials["AccessKeyId"],
                      aws_secret_access_key=credentials["SecretAccessKey"],
                      aws_session_token=credentials["SessionToken"])
    return boto3.client(service, **kwargs)


@dataclass
class World:
    active: list[str]  # the organisation's ACTIVE accounts, the management account included
    closed: str
    member: str  # the ACTIVE member account with networks of its own
    networks: dict[str, set[str]] = field(default_factory=dict)  # account → expected CIDRs
    endpoints: dict[str, set[str]] = field(default_factory=dict)  # account → VPC endpoint ids

    def expect(self, account: str, *cidrs: str) -> None:
        self.networks.setdefault(account, set()).update(
            str(ipaddress.ip_network(c, strict=False)) for c in cidrs)


def build_organisation(aws_env: dict) -> tuple[list[str], str]:
    """Three member accounts, the last one closed: (ACTIVE accounts, the closed one)."""
    org = client(aws_env, "organizations")
    org.create_organization(FeatureSet="ALL")
    created = [org.create_account(AccountName=f"member-{n}", Email=f"member-{n}@example.com")
               ["CreateAccountStatus"]["AccountId"] for n in range(3)]
    org.close_account(AccountId=created[-1])
    return sorted([MANAGEMENT, *created[:-1]]), created[-1]


def host(address: str) -> str:
    return f"{address}/128" if ":" in address else f"{address}/32"


def build_region(aws_env: dict, world: World, account: str, region: str, cidr: str,
                 extra_cidr: str | None = None, ipv6: bool = False) -> None:
    """A VPC with a subnet, an instance with a public address, a NAT gateway on an elastic IP,
    an elastic IP left unattached and an S3 endpoint; what they hold goes into ``world``."""
    ec2 = client(aws_env, "ec2", region, account)
    vpc = ec2.create_vpc(CidrBlock=cidr, AmazonProvidedIpv6CidrBlock=ipv6)["Vpc"]
    world.expect(account, DEFAULT_VPC, cidr,
                 *(b["Ipv6CidrBlock"] for b in vpc.get("Ipv6CidrBlockAssociationSet", [])))
    if extra_cidr:
        ec2.associate_vpc_cidr_block(VpcId=vpc["VpcId"], CidrBlock=extra_cidr)
        world.expect(account, extra_cidr)
    subnet = ec2.create_subnet(VpcId=vpc["VpcId"], CidrBlock=cidr.replace(".0.0/16", ".1.0/24"))
    subnet_id = subnet["Subnet"]["SubnetId"]
    interface = {"DeviceIndex": 0, "SubnetId": subnet_id, "AssociatePublicIpAddress": True}
    instance = ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1,
                                 NetworkInterfaces=[interface])["Instances"][0]
    nat_ip = ec2.allocate_address(Domain="vpc")
    ec2.create_nat_gateway(SubnetId=subnet_id, AllocationId=nat_ip["AllocationId"])
    spare_ip = ec2.allocate_address(Domain="vpc")["PublicIp"]
    world.expect(account, host(instance["PublicIpAddress"]), host(nat_ip["PublicIp"]),
                 host(spare_ip))
    endpoint = ec2.create_vpc_endpoint(VpcId=vpc["VpcId"], VpcEndpointType="Gateway",
                                       ServiceName=f"com.amazonaws.{region}.s3")["VpcEndpoint"]
    world.endpoints.setdefault(account, set()).add(endpoint["VpcEndpointId"])
