"""Seeded, realistic CloudTrail for the benchmarks: one organisation's mix, as JSON Lines bytes.

``Generator(seed).records(n)`` yields the first ``n`` records of one endless stream, each a JSON
object of 1.2–2 KB (no newline); the same seed gives the same bytes, and a shorter run is a prefix
of a longer one. About 5% of the records concern EC2 instance credentials: ec2.amazonaws.com
issuing a role's credentials to an instance (``AssumeRole``, session name ``i-…``) and calls
signed with them (``assumed-role/ROLE/i-…`` with ``ec2RoleDelivery``), from the instance's public
address or through its account's VPC endpoint, and now and then from an attacker outside AWS
(about one record in 50,000), so findings appear. The rest is what an organisation's trail is
made of: IAM users with long-term keys, console (SSO) sessions, Lambda and ECS task roles, CI and
cross-account roles, AWS services acting on their own or assuming roles for Lambda and ECS, SSM
and tagging calls that name instances in their resources, and a few address and instance
lifecycle events. Some of those irrelevant records still pass the byte-level pre-filter (every
``AssumeRole``, every record naming ``…/i-…``), as in a real trail.

``issuances(n, seed)`` makes ``n`` issuances with distinct keys and instances (the state
benchmark); ``issuance_record`` and ``theft_record`` build single records for injection.
"""

from __future__ import annotations

import base64
import random
import time
import uuid
from bisect import bisect
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import accumulate
from typing import Any

import msgspec

GENERATOR_VERSION = 1  # bump when the output changes, so cached data sets are rebuilt
BASE_EPOCH = 1709251200  # 2024-03-01T00:00:00Z
RATE = 50.0  # records per second of event time: an organisation's trail, ~4.3 M a day
MIN_BYTES, MAX_BYTES = 1200, 2000
THEFT_EVERY = 50_000  # about one stolen-credential call per this many records

_encoder = msgspec.json.Encoder()
_B32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"

# What each principal's software sends.
INSTANCE_AGENTS = (
    "Boto3/1.34.51 md/Botocore#1.34.51 ua/2.0 os/linux#6.1.72-96.166.amzn2023.x86_64 "
    "md/arch#x86_64 lang/python#3.11.6 md/pyimpl#CPython cfg/retry-mode#legacy Botocore/1.34.51",
    "aws-sdk-java/2.25.11 Linux/5.10.209-198.858.amzn2.x86_64 "
    "OpenJDK_64-Bit_Server_VM/17.0.10+7-LTS Java/17.0.10 vendor/Amazon.com_Inc. md/internal "
    "exec-env/AWS_ECS_EC2 io/sync http/Apache cfg/retry-mode/legacy",
    "aws-sdk-go-v2/1.25.2 os/linux lang/go#1.22.0 md/GOOS#linux md/GOARCH#amd64 api/s3#1.51.1",
    "amazon-ssm-agent/3.3.40.0",
    "aws-cli/2.15.25 Python/3.11.8 Linux/6.1.79-99.164.amzn2023.x86_64 exe/x86_64.amzn.2023 "
    "prompt/off command/s3.cp",
)
LAMBDA_AGENT = ("Boto3/1.34.42 md/Botocore#1.34.42 ua/2.0 os/linux#5.10.209-220.816.amzn2.x86_64 "
                "md/arch#x86_64 lang/python#3.11.8 md/pyimpl#CPython "
                "exec-env/AWS_Lambda_python3.11 cfg/retry-mode#legacy Botocore/1.34.42")
ECS_AGENT = ("aws-sdk-nodejs/2.1567.0 linux/v20.11.1 exec-env/AWS_ECS_FARGATE "
             "callback promise")
CONSOLE_AGENT = ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like "
                 "Gecko) Chrome/122.0.0.0 Safari/537.36")
USER_AGENTS = (
    "aws-cli/2.15.25 Python/3.11.8 Darwin/23.3.0 exe/x86_64 prompt/off "
    "command/ec2.describe-instances",
    "APN/1.0 HashiCorp/1.0 Terraform/1.7.4 (+https://www.terraform.io) "
    "terraform-provider-aws/5.39.0 aws-sdk-go-v2/1.25.2 os/linux lang/go#1.22.0",
    "Boto3/1.34.51 md/Botocore#1.34.51 ua/2.0 os/macos#23.3.0 md/arch#arm64 lang/python#3.12.2 "
    "md/pyimpl#CPython cfg/retry-mode#legacy Botocore/1.34.51",
)
ATTACKER_AGENT = ("aws-cli/2.13.0 Python/3.11.4 Linux/6.5.0-kali3-amd64 exe/x86_64.kali.2023 "
                  "prompt/off command/s3.ls")

# Public addresses in AWS's EC2 ranges (us-east-1), and addresses outside AWS.
EC2_PREFIXES = ("3.80.", "3.84.", "18.208.", "44.192.", "52.90.", "54.210.", "34.228.")
CORPORATE_EGRESS = ("198.51.100.", "192.0.2.")
HOME_PREFIXES = ("81.2.69.", "89.160.20.", "24.48.0.", "73.15.22.", "86.12.44.")
ATTACKER_IPS = ("185.220.101.7", "45.134.26.9", "91.219.236.12", "203.0.113.9", "185.100.87.41")

ROLES = ("web-role", "api-role", "worker-role", "batch-role", "etl-role", "bastion-role",
         "jenkins-agent-role", "kafka-broker-role")
BUCKETS = ("acme-prod-assets", "acme-data-lake-raw", "acme-logs-archive", "acme-ml-models",
           "acme-backups-eu", "acme-terraform-state")
FUNCTIONS = ("orders-api-handler", "image-resizer", "invoice-generator", "slack-notifier",
             "nightly-report", "cognito-post-confirmation", "stripe-webhook", "audit-exporter")
USERS = ("alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy",
         "mallory-ci", "svc-datadog", "svc-github-actions", "svc-backup", "svc-snowflake")
SERVICES_ON_THEIR_OWN = ("cloudtrail.amazonaws.com", "config.amazonaws.com",
                         "s3.amazonaws.com", "autoscaling.amazonaws.com",
                         "elasticloadbalancing.amazonaws.com", "backup.amazonaws.com")


def _kinds() -> tuple[list[float], list[str]]:
    weights = {  # per thousand records
        "issuance": 12.5,         # instance credentials delivered (5% instance share in all:
        "instance_call": 37.5,    # these two together)
        "iam_user": 230.0,
        "console": 150.0,
        "lambda": 190.0,
        "ecs": 140.0,
        "service": 110.0,
        "service_assume_role": 40.0,  # AssumeRole by lambda/ecs-tasks, web identity: pre-filter
        "instance_admin": 12.0,       # SSM, tags, naming instance/i-… in resources: pre-filter
        "network": 0.5,               # elastic IPs, stop/start
        "other_role": 77.5,
    }
    return list(accumulate(weights.values())), list(weights)


_CUMULATIVE, _KIND_NAMES = _kinds()
_TOTAL_WEIGHT = _CUMULATIVE[-1]
_PAD_OVERHEAD = len(b',"additionalEventData":{"SignatureVersion":"SigV4","CipherSuite":'
                    b'"TLS_AES_128_GCM_SHA256","x-amz-id-2":""}')


@dataclass
class Instance:
    instance_id: str
    account: str
    role: str
    public_ip: str
    private_ip: str
    key: str
    issued: float
    agent: str


class _Ids:
    """Every identifier drawn from the one seeded generator."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def key(self, prefix: str = "ASIA") -> str:
        return prefix + "".join(self.rng.choices(_B32, k=16))

    def hex(self, digits: int) -> str:
        return f"{self.rng.getrandbits(4 * digits):0{digits}x}"

    def instance(self) -> str:
        return "i-0" + self.hex(16)

    def ip(self, prefix: str) -> str:
        parts = 4 - prefix.count(".")
        return prefix + ".".join(str(self.rng.randrange(1, 255)) for _ in range(parts))

    def token(self, length: int) -> str:
        return base64.b64encode(self.rng.randbytes(length * 3 // 4 + 3)).decode()[:length]

    def role_id(self) -> str:
        return "AROA" + "".join(self.rng.choices(_B32, k=17))


def iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(epoch)))


def sts_expiration(epoch: float) -> str:
    """How sts:AssumeRole logs an expiration: ``Mar 1, 2024, 4:00:00 PM``."""
    moment = time.gmtime(int(epoch))
    hour = time.strftime("%I", moment).lstrip("0")
    return (f"{time.strftime('%b', moment)} {moment.tm_mday}, {moment.tm_year}, {hour}:"
            f"{time.strftime('%M:%S %p', moment)}")


class Organisation:
    """Accounts, people, roles and instances, drawn once from the seed."""

    def __init__(self, rng: random.Random, instances: int = 1500) -> None:
        ids = _Ids(rng)
        self.accounts = [str(rng.randrange(10**11, 10**12)) for _ in range(6)]
        self.vpc_endpoints = {a: "vpce-0" + ids.hex(16) for a in self.accounts}
        self.role_ids = {(a, r): ids.role_id() for a in self.accounts for r in ROLES}
        self.kms_keys = {a: ids.uuid() for a in self.accounts}
        self.user_keys = {u: ids.key("AKIA") for u in USERS}
        self.user_ids = {u: "AIDA" + "".join(rng.choices(_B32, k=17)) for u in USERS}
        self.sso_ids = {u: ids.role_id() for u in USERS}
        self.instances = []
        for _ in range(instances):
            account = rng.choice(self.accounts)
            self.instances.append(Instance(
                instance_id=ids.instance(), account=account, role=rng.choice(ROLES),
                public_ip=ids.ip(rng.choice(EC2_PREFIXES)),
                private_ip=ids.ip(f"10.{rng.randrange(0, 64)}."),
                key=ids.key(), issued=BASE_EPOCH - rng.uniform(0, 5 * 3600),
                agent=rng.choice(INSTANCE_AGENTS)))


class Generator:
    def __init__(self, seed: int = 1) -> None:
        self.seed = seed

    def records(self, n: int, start: int = 0) -> Iterator[bytes]:
        """Records ``start`` to ``n - 1`` of the stream (each one JSON object, no newline)."""
        rng = random.Random(self.seed)
        org = Organisation(rng)
        ids = _Ids(rng)
        for index in range(n):
            record = _one(rng, ids, org, index)
            if index >= start:
                yield record

    def jsonl(self, n: int) -> bytes:
        return b"".join(line + b"\n" for line in self.records(n))


def _one(rng: random.Random, ids: _Ids, org: Organisation, index: int) -> bytes:
    now = BASE_EPOCH + index / RATE + rng.uniform(-2.0, 2.0)
    if rng.random() * THEFT_EVERY < 1.0:
        record = _theft(rng, ids, org, now)
    else:
        kind = _KIND_NAMES[bisect(_CUMULATIVE, rng.random() * _TOTAL_WEIGHT)]
        record = _BUILDERS[kind](rng, ids, org, now)
    return sized(rng, ids, record)


def sized(rng: random.Random, ids: _Ids, record: dict[str, Any]) -> bytes:
    """Encode, padded (as S3 pads with x-amz-id-2) to a size drawn from 1.2–2 KB."""
    target = rng.randint(MIN_BYTES, MAX_BYTES)
    raw = _encoder.encode(record)
    need = target - len(raw) - _PAD_OVERHEAD
    if need >= 8 or len(raw) < MIN_BYTES:
        record["additionalEventData"] = {"SignatureVersion": "SigV4",
                                         "CipherSuite": "TLS_AES_128_GCM_SHA256",
                                         "x-amz-id-2": ids.token(max(need, 8))}
        raw = _encoder.encode(record)
    return raw


# -- record shapes ------------------------------------------------------------------------------


def _base(ids: _Ids, now: float, account: str, identity: dict, api: str, source_ip: str,
          agent: str, region: str = "us-east-1") -> dict[str, Any]:
    service, name = api.split(":", 1)
    source = f"{service}.amazonaws.com"
    return {"eventVersion": "1.09", "userIdentity": identity, "eventTime": iso(now),
            "eventSource": source, "eventName": name, "awsRegion": region,
            "sourceIPAddress": source_ip, "userAgent": agent, "requestParameters": None,
            "responseElements": None, "requestID": ids.uuid(), "eventID": ids.uuid(),
            "readOnly": name.startswith(("Get", "List", "Describe", "Head", "Lookup")),
            "eventType": "AwsApiCall", "managementEvent": True, "recipientAccountId": account,
            "eventCategory": "Management",
            "tlsDetails": {"tlsVersion": "TLSv1.3", "cipherSuite": "TLS_AES_128_GCM_SHA256",
                           "clientProvidedHostHeader": f"{service}.{region}.amazonaws.com"}}


def _assumed_role(org: Organisation, account: str, role: str, role_id: str, session: str,
                  key: str, created: float, delivery: str | None = None,
                  mfa: str = "false") -> dict[str, Any]:
    context: dict[str, Any] = {
        "sessionIssuer": {"type": "Role", "principalId": role_id,
                          "arn": f"arn:aws:iam::{account}:role/{role}", "accountId": account,
                          "userName": role},
        "webIdFederationData": {},
        "attributes": {"creationDate": iso(created), "mfaAuthenticated": mfa},
    }
    if delivery is not None:
        context["ec2RoleDelivery"] = delivery
    return {"type": "AssumedRole", "principalId": f"{role_id}:{session}",
            "arn": f"arn:aws:sts::{account}:assumed-role/{role}/{session}",
            "accountId": account, "accessKeyId": key, "sessionContext": context}


def _workload_call(rng: random.Random, ids: _Ids, org: Organisation, account: str,
                   record: dict[str, Any]) -> dict[str, Any]:
    """Fill in the request of a typical workload API call."""
    service = record["eventSource"].split(".")[0]
    region = record["awsRegion"]
    if service == "s3":
        bucket = rng.choice(BUCKETS)
        folder = rng.choice(("data", "uploads", "exports", "tmp"))
        key = f"{folder}/{ids.hex(8)}/{ids.hex(12)}.parquet"
        record["requestParameters"] = {"bucketName": bucket,
                                       "Host": f"{bucket}.s3.{region}.amazonaws.com",
                                       "key": key}
        record["resources"] = [{"type": "AWS::S3::Object", "ARN": f"arn:aws:s3:::{bucket}/{key}"},
                               {"accountId": account, "type": "AWS::S3::Bucket",
                                "ARN": f"arn:aws:s3:::{bucket}"}]
        record["managementEvent"] = False
        record["eventCategory"] = "Data"
        record["requestID"] = ids.hex(16).upper()
    elif service == "kms":
        arn = f"arn:aws:kms:{region}:{account}:key/{org.kms_keys[account]}"
        record["requestParameters"] = {
            "encryptionContext": {"aws:s3:arn": f"arn:aws:s3:::{rng.choice(BUCKETS)}"},
            "encryptionAlgorithm": "SYMMETRIC_DEFAULT", "keyId": arn}
        record["resources"] = [{"accountId": account, "type": "AWS::KMS::Key", "ARN": arn}]
    elif service == "ssm":
        record["requestParameters"] = {"name": f"/{rng.choice(('prod', 'staging'))}/"
                                               f"{rng.choice(('db', 'api', 'queue'))}/password",
                                       "withDecryption": True}
    elif service == "secretsmanager":
        record["requestParameters"] = {
            "secretId": f"arn:aws:secretsmanager:{region}:{account}:secret:prod/api-key-"
                        f"{ids.hex(6)}"}
    elif service == "dynamodb":
        table = rng.choice(("orders", "sessions", "inventory", "feature-flags"))
        record["requestParameters"] = {"tableName": table, "key": {"pk": f"ORDER#{ids.hex(10)}"},
                                       "consistentRead": False, "projectionExpression": "#s, #t"}
        record["resources"] = [{"accountId": account, "type": "AWS::DynamoDB::Table",
                                "ARN": f"arn:aws:dynamodb:{region}:{account}:table/{table}"}]
        record["managementEvent"] = False
        record["eventCategory"] = "Data"
    elif service == "sqs":
        queue = rng.choice(("jobs", "emails", "thumbnails"))
        record["requestParameters"] = {
            "queueUrl": f"https://sqs.{region}.amazonaws.com/{account}/{queue}",
            "maxNumberOfMessages": 10, "waitTimeSeconds": 20,
            "attributeNames": ["All"], "messageAttributeNames": ["All"]}
        record["resources"] = [{"accountId": account, "type": "AWS::SQS::Queue",
                                "ARN": f"arn:aws:sqs:{region}:{account}:{queue}"}]
    elif service == "ec2":
        record["requestParameters"] = {
            "instancesSet": {}, "filterSet": {"items": [
                {"name": "tag:Name", "valueSet": {"items": [{"value": rng.choice(ROLES)}]}}]}}
    elif service == "logs":
        record["requestParameters"] = {"logGroupName": f"/app/{rng.choice(FUNCTIONS)}",
                                       "logStreamName": f"{record['eventTime'][:10]}/{ids.hex(32)}"}
    elif service == "iam":
        record["requestParameters"] = {"maxItems": 100, "pathPrefix": "/"}
    elif service == "cloudformation":
        record["requestParameters"] = {"stackName": f"{rng.choice(ROLES)}-stack"}
    return record


WORKLOAD_APIS = ("s3:GetObject", "s3:GetObject", "s3:PutObject", "kms:Decrypt",
                 "kms:GenerateDataKey", "ssm:GetParameter", "secretsmanager:GetSecretValue",
                 "dynamodb:GetItem", "dynamodb:PutItem", "sqs:ReceiveMessage",
                 "sts:GetCallerIdentity", "logs:CreateLogStream", "ec2:DescribeInstances")
PEOPLE_APIS = ("ec2:DescribeInstances", "ec2:DescribeSecurityGroups", "iam:ListRoles",
               "iam:ListUsers", "s3:GetObject", "s3:PutObject", "cloudformation:DescribeStacks",
               "sts:GetCallerIdentity", "kms:Decrypt", "ssm:GetParameter", "logs:CreateLogStream")
ATTACKER_APIS = ("sts:GetCallerIdentity", "s3:ListBuckets", "iam:ListUsers",
                 "secretsmanager:ListSecrets", "ec2:DescribeInstances", "s3:GetObject")


def _issuance(rng, ids, org, now):
    instance = rng.choice(org.instances)
    instance.key = ids.key()
    instance.issued = now
    return issuance_record(ids, now, instance.instance_id, instance.key, instance.role,
                           instance.account, org.role_ids[(instance.account, instance.role)])


def issuance_record(ids: _Ids, now: float, instance_id: str, key: str, role: str, account: str,
                    role_id: str) -> dict[str, Any]:
    """EC2 delivering an instance profile's credentials (sts:AssumeRole by ec2.amazonaws.com)."""
    identity = {"type": "AWSService", "invokedBy": "ec2.amazonaws.com"}
    record = _base(ids, now, account, identity, "sts:AssumeRole", "ec2.amazonaws.com",
                   "ec2.amazonaws.com")
    del record["tlsDetails"]
    role_arn = f"arn:aws:iam::{account}:role/{role}"
    record["requestParameters"] = {"roleArn": role_arn, "roleSessionName": instance_id}
    record["responseElements"] = {
        "credentials": {"accessKeyId": key, "sessionToken": "IQoJb3JpZ2luX2VjE" + ids.token(420),
                        "expiration": sts_expiration(now + 6 * 3600)},
        "assumedRoleUser": {"assumedRoleId": f"{role_id}:{instance_id}",
                            "arn": f"arn:aws:sts::{account}:assumed-role/{role}/{instance_id}"}}
    record["readOnly"] = True
    record["resources"] = [{"accountId": account, "type": "AWS::IAM::Role", "ARN": role_arn}]
    record["sharedEventID"] = ids.uuid()
    return record


def _instance_call(rng, ids, org, now):
    # A few chatty instances make most calls, as in life.
    instance = org.instances[int(len(org.instances) * rng.random() ** 2)]
    account = instance.account
    identity = _assumed_role(org, account, instance.role,
                             org.role_ids[(account, instance.role)], instance.instance_id,
                             instance.key, instance.issued, delivery="2.0")
    roll = rng.random()
    endpoint = None
    if roll < 0.05:  # an AWS service acting for the instance's session
        identity["invokedBy"] = "s3.amazonaws.com"
        api, source = "kms:Decrypt", "s3.amazonaws.com"
    else:
        api = rng.choice(WORKLOAD_APIS)
        if roll < 0.28 and api.split(":")[0] in ("s3", "dynamodb", "kms", "ssm", "sqs"):
            endpoint = org.vpc_endpoints[account]
            source = instance.private_ip
        else:
            source = instance.public_ip
    record = _base(ids, now, account, identity, api, source, instance.agent)
    if endpoint is not None:
        record["vpcEndpointId"] = endpoint
        record["vpcEndpointAccountId"] = account
    return _workload_call(rng, ids, org, account, record)


def theft_record(ids: _Ids, now: float, instance_id: str, key: str, role: str, account: str,
                 role_id: str, source_ip: str, api: str = "sts:GetCallerIdentity",
                 issued: float | None = None) -> dict[str, Any]:
    """A call signed with an instance's credentials from an address outside AWS."""
    identity = {"type": "AssumedRole", "principalId": f"{role_id}:{instance_id}",
                "arn": f"arn:aws:sts::{account}:assumed-role/{role}/{instance_id}",
                "accountId": account, "accessKeyId": key,
                "sessionContext": {
                    "sessionIssuer": {"type": "Role", "principalId": role_id,
                                      "arn": f"arn:aws:iam::{account}:role/{role}",
                                      "accountId": account, "userName": role},
                    "webIdFederationData": {},
                    "attributes": {"creationDate": iso(issued if issued is not None else now),
                                   "mfaAuthenticated": "false"},
                    "ec2RoleDelivery": "2.0"}}
    return _base(ids, now, account, identity, api, source_ip, ATTACKER_AGENT)


def _theft(rng, ids, org, now):
    instance = rng.choice(org.instances)
    record = theft_record(ids, now, instance.instance_id, instance.key, instance.role,
                          instance.account, org.role_ids[(instance.account, instance.role)],
                          rng.choice(ATTACKER_IPS), rng.choice(ATTACKER_APIS), instance.issued)
    return record


def _iam_user(rng, ids, org, now):
    user = rng.choice(USERS)
    account = org.accounts[0]
    identity = {"type": "IAMUser", "principalId": org.user_ids[user],
                "arn": f"arn:aws:iam::{account}:user/{user}", "accountId": account,
                "accessKeyId": org.user_keys[user], "userName": user}
    source = ids.ip(rng.choice(CORPORATE_EGRESS + EC2_PREFIXES[:2]))
    record = _base(ids, now, account, identity, rng.choice(PEOPLE_APIS), source,
                   rng.choice(USER_AGENTS))
    return _workload_call(rng, ids, org, account, record)


def _console(rng, ids, org, now):
    user = rng.choice(USERS[:10])
    account = rng.choice(org.accounts)
    role = "AWSReservedSSO_AdministratorAccess_5d1f7c2a9e3b4f60"
    identity = _assumed_role(org, account, role, org.sso_ids[user], f"{user}@acme.example",
                             ids.key(), now - rng.uniform(0, 8 * 3600), mfa="true")
    record = _base(ids, now, account, identity, rng.choice(PEOPLE_APIS),
                   ids.ip(rng.choice(HOME_PREFIXES + CORPORATE_EGRESS)), CONSOLE_AGENT)
    record["sessionCredentialFromConsole"] = "true"
    return _workload_call(rng, ids, org, account, record)


def _lambda(rng, ids, org, now):
    function = rng.choice(FUNCTIONS)
    account = rng.choice(org.accounts)
    identity = _assumed_role(org, account, f"{function}-exec-role", org.sso_ids[USERS[0]],
                             function, ids.key(), now - rng.uniform(0, 3600))
    record = _base(ids, now, account, identity, rng.choice(WORKLOAD_APIS),
                   ids.ip(rng.choice(EC2_PREFIXES)), LAMBDA_AGENT)
    return _workload_call(rng, ids, org, account, record)


def _ecs(rng, ids, org, now):
    account = rng.choice(org.accounts)
    service = rng.choice(("checkout", "search", "recommendations"))
    identity = _assumed_role(org, account, f"ecs-{service}-task-role", org.sso_ids[USERS[1]],
                             ids.hex(32), ids.key(), now - rng.uniform(0, 3600))
    record = _base(ids, now, account, identity, rng.choice(WORKLOAD_APIS),
                   ids.ip(rng.choice(EC2_PREFIXES)), ECS_AGENT)
    return _workload_call(rng, ids, org, account, record)


def _other_role(rng, ids, org, now):
    account = rng.choice(org.accounts)
    role, session, agent = rng.choice((
        ("GitHubActionsDeployRole", "GitHubActions", USER_AGENTS[1]),
        ("OrganizationAccountAccessRole", f"botocore-session-{int(now) - 600}", USER_AGENTS[2]),
        ("SecurityAuditRole", "prowler-scan", USER_AGENTS[2]),
        ("terraform-deployer", "terraform-run-7731", USER_AGENTS[1]),
    ))
    identity = _assumed_role(org, account, role, org.sso_ids[USERS[2]], session, ids.key(),
                             now - rng.uniform(0, 3600))
    record = _base(ids, now, account, identity, rng.choice(PEOPLE_APIS),
                   ids.ip(rng.choice(EC2_PREFIXES + CORPORATE_EGRESS)), agent)
    return _workload_call(rng, ids, org, account, record)


def _service(rng, ids, org, now):
    service = rng.choice(SERVICES_ON_THEIR_OWN)
    account = rng.choice(org.accounts)
    identity = {"type": "AWSService", "invokedBy": service}
    api = rng.choice(("kms:GenerateDataKey", "kms:Decrypt", "s3:PutObject", "logs:CreateLogStream"))
    record = _base(ids, now, account, identity, api, service, service)
    record["sharedEventID"] = ids.uuid()
    return _workload_call(rng, ids, org, account, record)


def _service_assume_role(rng, ids, org, now):
    """A service assuming a role that is not an instance profile: decoded, then ignored."""
    account = rng.choice(org.accounts)
    if rng.random() < 0.85:
        service = rng.choice(("lambda.amazonaws.com", "ecs-tasks.amazonaws.com"))
        session = rng.choice(FUNCTIONS) if service.startswith("lambda") else ids.hex(32)
        role = f"{session[:20]}-exec-role"
        identity: dict[str, Any] = {"type": "AWSService", "invokedBy": service}
        api, source, agent = "sts:AssumeRole", service, service
    else:  # EKS service accounts (IRSA)
        role, session = "eks-external-dns", f"botocore-session-{int(now)}"
        identity = {"type": "WebIdentityUser",
                    "principalId": f"arn:aws:iam::{account}:oidc-provider/oidc.eks.us-east-1."
                                   f"amazonaws.com/id/{ids.hex(32).upper()}:sts.amazonaws.com:"
                                   "system:serviceaccount:kube-system:external-dns",
                    "userName": "system:serviceaccount:kube-system:external-dns",
                    "identityProvider": f"arn:aws:iam::{account}:oidc-provider/oidc.eks"}
        api, source, agent = ("sts:AssumeRoleWithWebIdentity", ids.ip(rng.choice(EC2_PREFIXES)),
                              USER_AGENTS[2])
    record = _base(ids, now, account, identity, api, source, agent)
    role_arn = f"arn:aws:iam::{account}:role/{role}"
    role_id = ids.role_id()
    record["requestParameters"] = {"roleArn": role_arn, "roleSessionName": session,
                                   "durationSeconds": 3600}
    record["responseElements"] = {
        "credentials": {"accessKeyId": ids.key(),
                        "sessionToken": "IQoJb3JpZ2luX2VjE" + ids.token(300),
                        "expiration": sts_expiration(now + 3600)},
        "assumedRoleUser": {"assumedRoleId": f"{role_id}:{session}",
                            "arn": f"arn:aws:sts::{account}:assumed-role/{role}/{session}"}}
    record["resources"] = [{"accountId": account, "type": "AWS::IAM::Role", "ARN": role_arn}]
    return record


def _instance_admin(rng, ids, org, now):
    """People and CI acting on instances: the record names ``instance/i-…``, the caller isn't."""
    instance = rng.choice(org.instances)
    account = instance.account
    user = rng.choice(USERS[:10])
    identity = _assumed_role(org, account, "AWSReservedSSO_PowerUserAccess_0a1b2c3d4e5f6a7b",
                             org.sso_ids[user], f"{user}@acme.example", ids.key(),
                             now - rng.uniform(0, 3600), mfa="true")
    arn = f"arn:aws:ec2:us-east-1:{account}:instance/{instance.instance_id}"
    if rng.random() < 0.5:
        record = _base(ids, now, account, identity, "ssm:SendCommand",
                       ids.ip(rng.choice(CORPORATE_EGRESS)), USER_AGENTS[0])
        record["requestParameters"] = {"instanceIds": [instance.instance_id],
                                       "documentName": "AWS-RunShellScript",
                                       "parameters": "HIDDEN_DUE_TO_SECURITY_REASONS",
                                       "timeoutSeconds": 600}
        record["responseElements"] = {"command": {"commandId": ids.uuid(),
                                                  "documentName": "AWS-RunShellScript",
                                                  "status": "Pending"}}
    else:
        record = _base(ids, now, account, identity, "ec2:CreateTags",
                       ids.ip(rng.choice(CORPORATE_EGRESS)), USER_AGENTS[1])
        record["requestParameters"] = {
            "resourcesSet": {"items": [{"resourceId": instance.instance_id}]},
            "tagSet": {"items": [{"key": "owner", "value": user}]}}
        record["responseElements"] = {"requestId": ids.uuid(), "_return": True}
    record["resources"] = [{"accountId": account, "type": "AWS::EC2::Instance", "ARN": arn}]
    return record


def _network(rng, ids, org, now):
    instance = rng.choice(org.instances)
    account = instance.account
    identity = _assumed_role(org, account, "terraform-deployer",
                             org.role_ids[(account, ROLES[0])], "terraform-run-7731",
                             ids.key(), now - 600)
    name = rng.choice(("AllocateAddress", "StopInstances", "StartInstances"))
    record = _base(ids, now, account, identity, f"ec2:{name}", ids.ip(CORPORATE_EGRESS[0]),
                   USER_AGENTS[1])
    record["readOnly"] = False
    if name == "AllocateAddress":
        record["requestParameters"] = {"domain": "vpc"}
        record["responseElements"] = {"requestId": ids.uuid(),
                                      "publicIp": ids.ip(rng.choice(EC2_PREFIXES)),
                                      "domain": "vpc", "allocationId": "eipalloc-0" + ids.hex(16),
                                      "publicIpv4Pool": "amazon",
                                      "networkBorderGroup": "us-east-1"}
    else:
        record["requestParameters"] = {"instancesSet": {"items": [
            {"instanceId": instance.instance_id}]}}
        record["responseElements"] = {"requestId": ids.uuid(), "instancesSet": {"items": [
            {"instanceId": instance.instance_id,
             "currentState": {"code": 64 if name == "StopInstances" else 0,
                              "name": "stopping" if name == "StopInstances" else "pending"},
             "previousState": {"code": 16 if name == "StopInstances" else 80,
                               "name": "running" if name == "StopInstances" else "stopped"}}]}}
    return record


_BUILDERS = {
    "issuance": _issuance,
    "instance_call": _instance_call,
    "iam_user": _iam_user,
    "console": _console,
    "lambda": _lambda,
    "ecs": _ecs,
    "service": _service,
    "service_assume_role": _service_assume_role,
    "instance_admin": _instance_admin,
    "network": _network,
    "other_role": _other_role,
}


# -- the state benchmark and injected records ---------------------------------------------------


@dataclass(frozen=True)
class Credential:
    instance_id: str
    key: str
    account: str
    role: str
    role_id: str


def credential(index: int, seed: int = 1) -> Credential:
    """The ``index``-th distinct instance credential (distinct key and instance per index)."""
    rng = random.Random(seed * 1_000_003 + index)
    ids = _Ids(rng)
    mixed = (index * 0x9E3779B97F4A7C15 + seed) % (1 << 64)  # a bijection: distinct per index
    encoded = ""
    value = index
    for _ in range(7):
        encoded = _B32[value % 32] + encoded
        value //= 32
    return Credential(instance_id=f"i-0{mixed:016x}",
                      key="ASIA" + encoded + "".join(rng.choices(_B32, k=9)),
                      account=str(100000000000 + index % 50 * 7919),
                      role=ROLES[index % len(ROLES)], role_id=ids.role_id())


def issuances(n: int, seed: int = 1, span_s: float = 3600.0) -> Iterator[tuple[bytes, bytes]]:
    """(instance id, record) for ``n`` live credentials issued within ``span_s`` of event time."""
    rng = random.Random(seed)
    ids = _Ids(rng)
    for index in range(n):
        c = credential(index, seed)
        now = BASE_EPOCH + index * span_s / max(n, 1)
        record = issuance_record(ids, now, c.instance_id, c.key, c.role, c.account, c.role_id)
        yield c.instance_id.encode(), sized(rng, ids, record)


def encode(record: dict[str, Any]) -> bytes:
    return _encoder.encode(record)


def ids_for(seed: int) -> _Ids:
    return _Ids(random.Random(seed))
