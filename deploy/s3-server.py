"""The compose stack's S3-compatible server: moto's, with the bucket made at start.

Objects live in memory and are gone when the container stops: for trying the stack and for
its smoke test, never for production (docs/deploy.md: AWS S3 or MinIO). Settings:
S3_BUCKET (made at start, default "lookalike"), S3_PORT (default 5000), S3_REGION
(default us-east-1). Any access key is accepted.
"""

from __future__ import annotations

import os
import signal
import threading

import boto3
from moto.server import ThreadedMotoServer


def main() -> None:
    port = int(os.environ.get("S3_PORT", "5000"))
    bucket = os.environ.get("S3_BUCKET", "lookalike")
    region = os.environ.get("S3_REGION", "us-east-1")
    server = ThreadedMotoServer(ip_address="0.0.0.0", port=port)
    server.start()
    client = boto3.client(
        "s3",
        endpoint_url=f"http://127.0.0.1:{port}",
        region_name=region,
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )
    if region == "us-east-1":  # the one region S3 refuses a location constraint for
        client.create_bucket(Bucket=bucket)
    else:
        client.create_bucket(
            Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": region}
        )
    print(f"S3 server on port {port}, bucket {bucket!r} ({region})", flush=True)
    # As PID 1 a process gets no default SIGTERM handling: stop at once when asked to.
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    server.stop()


if __name__ == "__main__":
    main()
