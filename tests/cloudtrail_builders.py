"""Realistic CloudTrail records for tests, built as plain dicts.

Every builder takes the event id and event time explicitly, so a generator that uses them writes
the same bytes on every run. Times are ISO 8601 strings (``2024-03-01T10:00:00Z``); ``at`` makes
them from an offset in minutes and seconds after a base moment.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

OWNER = "111122223333"
REGION = "us-east-1"
ROLE = "web-role"
BASE = datetime(2024, 3, 1, 10, 0, 0, tzinfo=UTC)

# What an instance's own SDKs send, and what a thief's laptop or rented box sends.
INSTANCE_AGENT = ("Boto3/1.34.51 md/Botocore#1.34.51 ua/2.0 os/linux#6.1.72-96.166.amzn2023.x86_64 "
                  "md/arch#x86_64 lang/python#3.11.6 md/pyimpl#CPython cfg/retry-mode#legacy "
                  "Botocore/1.34.51")
ATTACKER_AGENT = ("aws-cli/2.13.0 Python/3.11.4 Linux/6.5.0-kali3-amd64 exe/x86_64.kali.2023 "
                  "prompt/off command/s3.ls")
CONSOLE_AGENT = ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like "
                 "Gecko) Chrome/122.0.0.0 Safari/537.36")

BASE_CREATED = "2024-03-01T10:00:00Z"
_NAMESPACE = uuid.UUID("6f1d2c3b-4a5e-4f60-8a7b-9c0d1e2f3a4b")

# Whether each API is read-only, for the ``readOnly`` field.
_READ_ONLY_PREFIXES = ("Get", "List", "Describe", "Head", "Lookup")


def at(minutes: float = 0, seconds: float = 0, base: datetime = BASE) -> str:
    """``base`` plus an offset, as CloudTrail writes event times."""
    moment = base + timedelta(minutes=minutes, seconds=seconds)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse(time: str) -> datetime:
    return datetime.fromisoformat(time.replace("Z", "+00:00"))


def sts_expiration(time: str, hours: int = 6) -> str:
    """How sts:AssumeRole logs an expiration: ``Mar 1, 2024, 4:00:00 PM``."""
    moment = _parse(time) + timedelta(hours=hours)
    hour = moment.strftime("%I").lstrip("0")
    rest = moment.strftime("%M:%S %p")
    return f"{moment.strftime('%b')} {moment.day}, {moment.year}, {hour}:{rest}"


def request_id(event_id: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, "request:" + event_id))


def role_id(role: str) -> str:
    """A stable AROA-style role id (21 characters) for a role name."""
    digest = uuid.uuid5(_NAMESPACE, "role:" + role).hex.upper()
    return "AROA" + "".join(c if c.isalpha() else chr(ord("K") + int(c)) for c in digest[:17])


def session_token(access_key: str) -> str:
    seed = uuid.uuid5(_NAMESPACE, "token:" + access_key).hex
    return "IQoJb3JpZ2luX2VjE" + (seed * 6)[:180]


def _base(event_id: str, time: str, account: str, region: str) -> dict[str, Any]:
    return {"eventVersion": "1.08", "userIdentity": {}, "eventTime": time,
            "eventSource": "", "eventName": "", "awsRegion": region,
            "sourceIPAddress": "", "userAgent": "", "requestParameters": None,
            "responseElements": None, "requestID": request_id(event_id), "eventID": event_id,
            "readOnly": True, "eventType": "AwsApiCall", "managementEvent": True,
            "recipientAccountId": account, "eventCategory": "Management"}


def _split_api(api: str) -> tuple[str, str]:
    service, name = api.split(":", 1)
    return f"{service}.amazonaws.com", name


# -- credential issuance ------------------------------------------------------------------------


def issuance(*, event_id: str, time: str, instance_id: str, access_key: str, role: str = ROLE,
             account: str = OWNER, region: str = REGION) -> dict[str, Any]:
    """EC2 delivering the instance profile's credentials (sts:AssumeRole by ec2.amazonaws.com)."""
    record = _base(event_id, time, account, region)
    record.update(
        userIdentity={"type": "AWSService", "invokedBy": "ec2.amazonaws.com"},
        eventSource="sts.amazonaws.com", eventName="AssumeRole",
        sourceIPAddress="ec2.amazonaws.com", userAgent="ec2.amazonaws.com",
        requestParameters={"roleArn": f"arn:aws:iam::{account}:role/{role}",
                           "roleSessionName": instance_id},
        responseElements={
            "credentials": {"accessKeyId": access_key, "sessionToken": session_token(access_key),
                            "expiration": sts_expiration(time)},
            "assumedRoleUser": {"assumedRoleId": f"{role_id(role)}:{instance_id}",
                                "arn": f"arn:aws:sts::{account}:assumed-role/{role}/{instance_id}"},
        },
        resources=[{"accountId": account, "type": "AWS::IAM::Role",
                    "ARN": f"arn:aws:iam::{account}:role/{role}"}],
        sharedEventID=str(uuid.uuid5(_NAMESPACE, "shared:" + event_id)),
    )
    return record


# -- calls --------------------------------------------------------------------------------------


def assumed_role_identity(*, account: str, role: str, session: str, access_key: str,
                          created: str, delivery: str | None = None,
                          invoked_by: str | None = None) -> dict[str, Any]:
    attributes = {"creationDate": created, "mfaAuthenticated": "false"}
    context: dict[str, Any] = {
        "sessionIssuer": {"type": "Role", "principalId": role_id(role),
                          "arn": f"arn:aws:iam::{account}:role/{role}",
                          "accountId": account, "userName": role},
        "webIdFederationData": {},
        "attributes": attributes,
    }
    if delivery is not None:
        context["ec2RoleDelivery"] = delivery
    identity = {"type": "AssumedRole", "principalId": f"{role_id(role)}:{session}",
                "arn": f"arn:aws:sts::{account}:assumed-role/{role}/{session}",
                "accountId": account, "accessKeyId": access_key, "sessionContext": context}
    if invoked_by is not None:
        identity["invokedBy"] = invoked_by
    return identity


def api_record(*, event_id: str, time: str, identity: dict[str, Any], source_ip: str,
               api: str = "sts:GetCallerIdentity", user_agent: str = INSTANCE_AGENT,
               account: str = OWNER, region: str = REGION,
               request: dict[str, Any] | None = None, response: dict[str, Any] | None = None,
               vpc_endpoint_id: str | None = None, vpc_endpoint_account_id: str | None = None,
               data_event: bool = False) -> dict[str, Any]:
    source, name = _split_api(api)
    record = _base(event_id, time, account, region)
    record.update(userIdentity=identity, eventSource=source, eventName=name,
                  sourceIPAddress=source_ip, userAgent=user_agent,
                  requestParameters=request, responseElements=response,
                  readOnly=name.startswith(_READ_ONLY_PREFIXES))
    if data_event:
        record["managementEvent"] = False
        record["eventCategory"] = "Data"
    if vpc_endpoint_id is not None:
        record["vpcEndpointId"] = vpc_endpoint_id
    if vpc_endpoint_account_id is not None:
        record["vpcEndpointAccountId"] = vpc_endpoint_account_id
    record["tlsDetails"] = {"tlsVersion": "TLSv1.3", "cipherSuite": "TLS_AES_128_GCM_SHA256",
                            "clientProvidedHostHeader": f"{source.split('.')[0]}.{region}."
                                                        "amazonaws.com"}
    return record


def call(*, event_id: str, time: str, access_key: str, instance_id: str, source_ip: str,
         api: str = "sts:GetCallerIdentity", role: str = ROLE, account: str = OWNER,
         region: str = REGION, delivery: str | None = "2.0", created: str | None = None,
         user_agent: str = INSTANCE_AGENT, invoked_by: str | None = None,
         request: dict[str, Any] | None = None, response: dict[str, Any] | None = None,
         vpc_endpoint_id: str | None = None, vpc_endpoint_account_id: str | None = None,
         data_event: bool = False) -> dict[str, Any]:
    """A call signed by an instance session's key (session name = instance id)."""
    identity = assumed_role_identity(account=account, role=role, session=instance_id,
                                     access_key=access_key, created=created or BASE_CREATED,
                                     delivery=delivery, invoked_by=invoked_by)
    return api_record(event_id=event_id, time=time, identity=identity, source_ip=source_ip,
                      api=api, user_agent=user_agent, account=account, region=region,
                      request=request, response=response, vpc_endpoint_id=vpc_endpoint_id,
                      vpc_endpoint_account_id=vpc_endpoint_account_id, data_event=data_event)


def iam_user_call(*, event_id: str, time: str, user: str, access_key: str, source_ip: str,
                  api: str = "sts:GetCallerIdentity", account: str = OWNER,
                  user_agent: str = ATTACKER_AGENT, request: dict[str, Any] | None = None,
                  response: dict[str, Any] | None = None) -> dict[str, Any]:
    identity = {"type": "IAMUser", "principalId": "AIDA" + role_id(user)[4:],
                "arn": f"arn:aws:iam::{account}:user/{user}", "accountId": account,
                "accessKeyId": access_key, "userName": user}
    return api_record(event_id=event_id, time=time, identity=identity, source_ip=source_ip,
                      api=api, user_agent=user_agent, account=account, request=request,
                      response=response)


def session_call(*, event_id: str, time: str, role: str, session: str, access_key: str,
                 source_ip: str, api: str = "sts:GetCallerIdentity", account: str = OWNER,
                 delivery: str | None = None, user_agent: str = ATTACKER_AGENT,
                 created: str | None = None, identity_type: str = "AssumedRole",
                 web_identity: dict[str, Any] | None = None) -> dict[str, Any]:
    """A call by any role session (ECS task, Lambda, IRSA, SSO, the instance identity role...)."""
    identity = assumed_role_identity(account=account, role=role, session=session,
                                     access_key=access_key, created=created or BASE_CREATED,
                                     delivery=delivery)
    identity["type"] = identity_type
    if web_identity is not None:
        identity["sessionContext"]["webIdFederationData"] = web_identity
    return api_record(event_id=event_id, time=time, identity=identity, source_ip=source_ip,
                      api=api, user_agent=user_agent, account=account)


# -- network events -----------------------------------------------------------------------------


def _admin_identity(account: str) -> dict[str, Any]:
    """Whoever runs the infrastructure: a Terraform role session from the CI system."""
    return assumed_role_identity(account=account, role="terraform-deployer",
                                 session="terraform-run-7731", access_key="ASIAZ3TERRAFORM7731X",
                                 created=BASE_CREATED)


def _ec2_record(event_id: str, time: str, account: str, name: str, identity: dict[str, Any] | None,
                source_ip: str, request: Any, response: Any, region: str) -> dict[str, Any]:
    record = _base(event_id, time, account, region)
    record.update(userIdentity=identity or _admin_identity(account),
                  eventSource="ec2.amazonaws.com", eventName=name,
                  sourceIPAddress=source_ip,
                  userAgent="APN/1.0 HashiCorp/1.0 Terraform/1.7.4 (+https://www.terraform.io) "
                            "terraform-provider-aws/5.39.0 aws-sdk-go-v2/1.25.2",
                  requestParameters=request, responseElements=response, readOnly=False)
    return record


def allocate_address(*, event_id: str, time: str, public_ip: str, allocation_id: str,
                     account: str = OWNER, region: str = REGION,
                     identity: dict[str, Any] | None = None,
                     source_ip: str = "198.51.100.44") -> dict[str, Any]:
    return _ec2_record(event_id, time, account, "AllocateAddress", identity, source_ip,
                       {"domain": "vpc"},
                       {"requestId": request_id(event_id), "publicIp": public_ip,
                        "domain": "vpc", "allocationId": allocation_id,
                        "publicIpv4Pool": "amazon", "networkBorderGroup": region},
                       region)


def associate_address(*, event_id: str, time: str, allocation_id: str, instance_id: str,
                      association_id: str, account: str = OWNER, region: str = REGION,
                      identity: dict[str, Any] | None = None,
                      source_ip: str = "198.51.100.44") -> dict[str, Any]:
    return _ec2_record(event_id, time, account, "AssociateAddress", identity, source_ip,
                       {"allocationId": allocation_id, "instanceId": instance_id,
                        "allowReassociation": False},
                       {"requestId": request_id(event_id), "_return": True,
                        "associationId": association_id},
                       region)


def disassociate_address(*, event_id: str, time: str, association_id: str,
                         account: str = OWNER, region: str = REGION) -> dict[str, Any]:
    """DisassociateAddress of a VPC elastic IP: by association id; the address stays allocated."""
    return _ec2_record(event_id, time, account, "DisassociateAddress", None, "198.51.100.44",
                       {"associationId": association_id},
                       {"requestId": request_id(event_id), "_return": True}, region)


def release_address(*, event_id: str, time: str, allocation_id: str | None = None,
                    public_ip: str | None = None, account: str = OWNER,
                    region: str = REGION) -> dict[str, Any]:
    """ReleaseAddress: a VPC elastic IP by allocation id, an EC2-Classic one by address."""
    request: dict[str, Any] = {}
    if allocation_id is not None:
        request["allocationId"] = allocation_id
    if public_ip is not None:
        request["publicIp"] = public_ip
    return _ec2_record(event_id, time, account, "ReleaseAddress", None, "198.51.100.44",
                       request, {"requestId": request_id(event_id), "_return": True}, region)


def delete_nat_gateway(*, event_id: str, time: str, nat_gateway_id: str, account: str = OWNER,
                       region: str = REGION) -> dict[str, Any]:
    """DeleteNatGateway: CloudTrail names the gateway only (its elastic IPs stay allocated)."""
    response = {"DeleteNatGatewayResponse": {
        "xmlns": "http://ec2.amazonaws.com/doc/2016-11-15/", "requestId": request_id(event_id),
        "natGatewayId": nat_gateway_id}}
    return _ec2_record(event_id, time, account, "DeleteNatGateway", None, "198.51.100.44",
                       {"DeleteNatGatewayRequest": {"NatGatewayId": nat_gateway_id}}, response,
                       region)


def nat_gateway(*, event_id: str, time: str, allocation_id: str, nat_gateway_id: str,
                subnet_id: str, vpc_id: str, private_ip: str, public_ip: str | None = None,
                account: str = OWNER, region: str = REGION) -> dict[str, Any]:
    """CreateNatGateway; the response names the EIP's public address only once it is known."""
    address = {"allocationId": allocation_id,
               "networkInterfaceId": "eni-" + uuid.uuid5(_NAMESPACE, nat_gateway_id).hex[:17],
               "privateIp": private_ip, "isPrimary": True, "status": "associating"}
    if public_ip is not None:
        address["publicIp"] = public_ip
        address["status"] = "succeeded"
    response = {"CreateNatGatewayResponse": {
        "xmlns": "http://ec2.amazonaws.com/doc/2016-11-15/",
        "requestId": request_id(event_id),
        "clientToken": "terraform-" + event_id,
        "natGateway": {"createTime": time, "natGatewayAddressSet": {"item": address},
                       "natGatewayId": nat_gateway_id, "state": "pending",
                       "subnetId": subnet_id, "vpcId": vpc_id, "connectivityType": "public"}}}
    return _ec2_record(event_id, time, account, "CreateNatGateway", None, "198.51.100.44",
                       {"CreateNatGatewayRequest": {"SubnetId": subnet_id,
                                                    "AllocationId": allocation_id,
                                                    "ConnectivityType": "public",
                                                    "ClientToken": "terraform-" + event_id}},
                       response, region)


def _instances_state(event_id: str, time: str, name: str, instance_ids: list[str], account: str,
                     region: str, previous: tuple[int, str], current: tuple[int, str]
                     ) -> dict[str, Any]:
    items = [{"instanceId": i} for i in instance_ids]
    response = {"requestId": request_id(event_id), "instancesSet": {"items": [
        {"instanceId": i, "currentState": {"code": current[0], "name": current[1]},
         "previousState": {"code": previous[0], "name": previous[1]}} for i in instance_ids]}}
    request: dict[str, Any] = {"instancesSet": {"items": items}}
    if name == "StopInstances":
        request["force"] = False
    return _ec2_record(event_id, time, account, name, None, "198.51.100.44", request, response,
                       region)


def stop_instances(*, event_id: str, time: str, instance_ids: list[str], account: str = OWNER,
                   region: str = REGION) -> dict[str, Any]:
    return _instances_state(event_id, time, "StopInstances", instance_ids, account, region,
                            (16, "running"), (64, "stopping"))


def start_instances(*, event_id: str, time: str, instance_ids: list[str], account: str = OWNER,
                    region: str = REGION) -> dict[str, Any]:
    return _instances_state(event_id, time, "StartInstances", instance_ids, account, region,
                            (80, "stopped"), (0, "pending"))


# -- key lineage --------------------------------------------------------------------------------


def assume_role_response(*, time: str, child_key: str, role_arn: str,
                         session: str) -> dict[str, Any]:
    """``responseElements`` of an sts:AssumeRole that minted ``child_key``."""
    account, role = role_arn.split(":")[4], role_arn.rsplit("/", 1)[-1]
    return {"credentials": {"accessKeyId": child_key, "sessionToken": session_token(child_key),
                            "expiration": sts_expiration(time, hours=1)},
            "assumedRoleUser": {"assumedRoleId": f"{role_id(role)}:{session}",
                                "arn": f"arn:aws:sts::{account}:assumed-role/{role}/{session}"}}


def assume_role(*, event_id: str, time: str, identity: dict[str, Any], source_ip: str,
                child_key: str, role_arn: str, session: str, user_agent: str = INSTANCE_AGENT,
                recipient: str | None = None, shared_event_id: str | None = None,
                region: str = REGION) -> dict[str, Any]:
    """sts:AssumeRole signed with a session's key; ``recipient`` names the trail's account (a
    cross-account call is written to both, with one ``sharedEventID``)."""
    record = api_record(event_id=event_id, time=time, identity=identity, source_ip=source_ip,
                        api="sts:AssumeRole", user_agent=user_agent,
                        account=recipient or identity["accountId"], region=region,
                        request={"roleArn": role_arn, "roleSessionName": session},
                        response=assume_role_response(time=time, child_key=child_key,
                                                      role_arn=role_arn, session=session))
    record["resources"] = [{"accountId": role_arn.split(":")[4], "type": "AWS::IAM::Role",
                            "ARN": role_arn}]
    if shared_event_id is not None:
        record["sharedEventID"] = shared_event_id
    return record


def console_login(*, event_id: str, time: str, role: str, session: str, source_ip: str,
                  account: str = OWNER, user_agent: str = CONSOLE_AGENT) -> dict[str, Any]:
    """signin ConsoleLogin of a federated role session (aws_consoler's sign-in URL): no key."""
    record = _base(event_id, time, account, REGION)
    record.update(
        userIdentity={"type": "AssumedRole", "principalId": f"{role_id(role)}:{session}",
                      "arn": f"arn:aws:sts::{account}:assumed-role/{role}/{session}",
                      "accountId": account,
                      "sessionContext": {"sessionIssuer": {
                          "type": "Role", "principalId": role_id(role),
                          "arn": f"arn:aws:iam::{account}:role/{role}", "accountId": account,
                          "userName": role}, "attributes": {"mfaAuthenticated": "false"}}},
        eventSource="signin.amazonaws.com", eventName="ConsoleLogin", sourceIPAddress=source_ip,
        userAgent=user_agent, readOnly=False, eventType="AwsConsoleSignIn",
        responseElements={"ConsoleLogin": "Success"},
        additionalEventData={"LoginTo": "https://console.aws.amazon.com/console/home",
                             "MobileVersion": "No", "MFAUsed": "No"})
    return record


def run_instances(*, event_id: str, time: str, instance_id: str, private_ip: str,
                  ipv6: str | None = None, account: str = OWNER, region: str = REGION,
                  interface_id: str = "eni-0a1b2c3d4e5f60718") -> dict[str, Any]:
    """ec2:RunInstances launching one instance, its interface's addresses in the response."""
    interface: dict[str, Any] = {
        "networkInterfaceId": interface_id, "subnetId": "subnet-0a1b2c3d4e5f6a7b8",
        "privateIpAddress": private_ip,
        "privateIpAddressesSet": {"item": [{"privateIpAddress": private_ip, "primary": True}]},
        "ipv6AddressesSet": {"items": [{"ipv6Address": ipv6}] if ipv6 else []}}
    return _ec2_record(event_id, time, account, "RunInstances", None, "198.51.100.44",
                       {"instancesSet": {"items": [{"imageId": "ami-0c101f26f147fa7fd",
                                                    "minCount": 1, "maxCount": 1}]},
                        "instanceType": "t3.micro"},
                       {"requestId": request_id(event_id), "ownerId": account,
                        "instancesSet": {"items": [{
                            "instanceId": instance_id, "imageId": "ami-0c101f26f147fa7fd",
                            "instanceState": {"code": 0, "name": "pending"},
                            "privateIpAddress": private_ip,
                            "networkInterfaceSet": {"items": [interface]}}]}},
                       region)


def assign_ipv6_addresses(*, event_id: str, time: str, interface_id: str, ipv6: list[str],
                          account: str = OWNER, region: str = REGION,
                          identity: dict[str, Any] | None = None,
                          source_ip: str = "198.51.100.44") -> dict[str, Any]:
    """ec2:AssignIpv6Addresses: EC2 picks the addresses; the response lists them."""
    return _ec2_record(event_id, time, account, "AssignIpv6Addresses", identity, source_ip,
                       {"AssignIpv6AddressesRequest": {"NetworkInterfaceId": interface_id,
                                                       "Ipv6AddressCount": len(ipv6)}},
                       {"AssignIpv6AddressesResponse": {
                           "xmlns": "http://ec2.amazonaws.com/doc/2016-11-15/",
                           "requestId": request_id(event_id),
                           "networkInterfaceId": interface_id,
                           "assignedIpv6Addresses": {"item": ipv6}}},
                       region)


def assign_private_ip_addresses(*, event_id: str, time: str, interface_id: str,
                                private_ips: list[str], account: str = OWNER,
                                region: str = REGION, identity: dict[str, Any] | None = None,
                                source_ip: str = "198.51.100.44") -> dict[str, Any]:
    """ec2:AssignPrivateIpAddresses of a count of secondary addresses; the response lists them."""
    return _ec2_record(event_id, time, account, "AssignPrivateIpAddresses", identity, source_ip,
                       {"networkInterfaceId": interface_id,
                        "secondaryPrivateIpAddressCount": len(private_ips)},
                       {"requestId": request_id(event_id), "_return": True,
                        "networkInterfaceId": interface_id,
                        "assignedPrivateIpAddressesSet": {"assignedPrivateIpAddressSetType": [
                            {"privateIpAddress": ip} for ip in private_ips]}},
                       region)
