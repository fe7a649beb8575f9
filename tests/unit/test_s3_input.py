"""CloudTrail from S3 (moto's server mode on loopback, never the internet): listing is paginated,
gzip is read, and detect over s3:// gives what it gives over the same files on disk."""

from __future__ import annotations

import gzip
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

boto3 = pytest.importorskip("boto3")
moto_server = pytest.importorskip("moto.server")

EXFILGUARD = str(Path(sys.executable).with_name("exfilguard"))
INVICTUS = Path(__file__).resolve().parents[1] / "fixtures" / "invictus" / "CloudTrail"


@pytest.fixture(scope="module")
def s3_env():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    env = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
    yield env
    server.stop()


def test_detect_reads_a_paginated_gzip_prefix(s3_env, tmp_path):
    client = boto3.client("s3", endpoint_url=s3_env["AWS_ENDPOINT_URL"], region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    client.create_bucket(Bucket="trail")
    prefix = "AWSLogs/123837392027/CloudTrail/us-east-1/2023/07/10/"
    for path in sorted(INVICTUS.glob("*.json")):
        client.put_object(Bucket="trail", Key=prefix + path.name + ".gz",
                          Body=gzip.compress(path.read_bytes()))
    # Past one listing page (1,000 keys): objects that are not CloudTrail at all.
    for n in range(1001):
        client.put_object(Bucket="trail", Key=f"{prefix}zz-digest-{n:04d}.json", Body=b"{}")
    env = {**os.environ, **s3_env}
    from_s3 = subprocess.run([EXFILGUARD, "detect", "s3://trail/AWSLogs/"], env=env,
                             capture_output=True, timeout=300, check=False)
    from_disk = subprocess.run([EXFILGUARD, "detect", str(INVICTUS)], capture_output=True,
                               timeout=120, check=False)
    assert from_s3.returncode == 0, from_s3.stderr.decode()
    assert from_s3.stdout == from_disk.stdout
    assert json.loads(from_s3.stdout.splitlines()[0])["severity"] == 8
    assert b"3901 records" in from_s3.stderr  # 2,900 CloudTrail records + 1,001 stray objects


def test_a_missing_bucket_is_one_line(s3_env):
    env = {**os.environ, **s3_env}
    result = subprocess.run([EXFILGUARD, "detect", "s3://no-such-bucket/x"], env=env,
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "no-such-bucket" in result.stderr
