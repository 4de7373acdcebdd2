"""An S3-compatible server on loopback for presigned uploads: moto in server mode, in a thread,
behind a WSGI layer that checks presigned URLs as S3 does.

moto stores what a presigned URL sends without checking its signature, its expiry or its
signed headers; S3 refuses such a request (403). ``PresignedCheck`` does that check (AWS
Signature Version 4, query-string form: the canonical request over the signed headers as they
arrive, ``UNSIGNED-PAYLOAD``), so a PUT with another Content-Type or Content-Length, a tampered
signature or an expired URL is refused here too. Everything else (the service's own
header-signed requests, CORS preflights) goes to moto untouched.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, quote

from moto.moto_server.threaded_moto_server import ThreadedMotoServer
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import make_server

from lookalike.config import Settings
from support.server import free_port

KEYS = {"aws_access_key_id": "test", "aws_secret_access_key": "test", "region_name": "us-east-1"}
UNSIGNED = "UNSIGNED-PAYLOAD"

StartResponse = Callable[[str, list[tuple[str, str]]], Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def _quote(text: str) -> str:
    return quote(text, safe="-_.~")


def _header(environ: dict[str, Any], name: str) -> str | None:
    special = {"content-type": "CONTENT_TYPE", "content-length": "CONTENT_LENGTH"}
    value = environ.get(special.get(name, "HTTP_" + name.upper().replace("-", "_")))
    return None if value is None else " ".join(str(value).split())


def presigned_signature(environ: dict[str, Any], params: list[tuple[str, str]], secret: str) -> str:
    """The SigV4 signature S3 expects for this request (query-string authentication)."""
    query = dict(params)
    signed = query["X-Amz-SignedHeaders"].split(";")
    headers = "".join(f"{name}:{_header(environ, name) or ''}\n" for name in signed)
    canonical_query = "&".join(
        f"{_quote(k)}={_quote(v)}" for k, v in sorted(params) if k != "X-Amz-Signature"
    )
    raw_path = str(environ.get("RAW_URI") or environ.get("REQUEST_URI") or "/").split("?")[0]
    canonical = "\n".join(
        [environ["REQUEST_METHOD"], raw_path, canonical_query, headers, ";".join(signed), UNSIGNED]
    )
    _, day, region, service, _ = query["X-Amz-Credential"].split("/")
    scope = f"{day}/{region}/{service}/aws4_request"
    to_sign = "\n".join(
        [
            "AWS4-HMAC-SHA256",
            query["X-Amz-Date"],
            scope,
            hashlib.sha256(canonical.encode()).hexdigest(),
        ]
    )
    key = _hmac(("AWS4" + secret).encode(), day)
    for part in (region, service, "aws4_request"):
        key = _hmac(key, part)
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


class PresignedCheck:
    """WSGI middleware: refuse a presigned request S3 would refuse, as S3 does (403 + XML)."""

    def __init__(self, app: WsgiApp, secrets: dict[str, str]) -> None:
        self.app = app
        self.secrets = secrets
        self.refused: list[str] = []  # the codes refused so far, for the tests to read

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        params = parse_qsl(str(environ.get("QUERY_STRING", "")), keep_blank_values=True)
        preflight = environ.get("REQUEST_METHOD") == "OPTIONS"  # CORS: never authenticated
        if preflight or "X-Amz-Signature" not in dict(params):
            return self.app(environ, start_response)
        code = self.problem(environ, params)
        if code is None:
            return self.app(environ, start_response)
        self.refused.append(code)
        length = int(environ.get("CONTENT_LENGTH") or 0)
        if length:
            environ["wsgi.input"].read(length)  # read it: a browser sees the 403, not a reset
        body = f"<?xml version='1.0'?><Error><Code>{code}</Code></Error>".encode()
        start_response(
            "403 Forbidden",
            [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))],
        )
        return [body]

    def problem(self, environ: dict[str, Any], params: list[tuple[str, str]]) -> str | None:
        query = dict(params)
        access_key = query.get("X-Amz-Credential", "").split("/")[0]
        if access_key not in self.secrets:
            return "InvalidAccessKeyId"
        signed_at = datetime.strptime(query["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        if datetime.now(UTC) > signed_at + timedelta(seconds=int(query["X-Amz-Expires"])):
            return "AccessDenied"  # "Request has expired"
        expected = presigned_signature(environ, params, self.secrets[access_key])
        if not hmac.compare_digest(expected, query["X-Amz-Signature"]):
            return "SignatureDoesNotMatch"
        return None


class CheckedMotoServer(ThreadedMotoServer):
    """moto's threaded server with ``PresignedCheck`` in front of it."""

    def __init__(self, port: int) -> None:
        super().__init__(ip_address="127.0.0.1", port=port, verbose=False)
        self.check: PresignedCheck | None = None

    def _server_entry(self) -> None:
        self.check = PresignedCheck(
            DomainDispatcherApplication(create_backend_app),
            {KEYS["aws_access_key_id"]: KEYS["aws_secret_access_key"]},
        )
        self._server = make_server(
            self._ip_address,
            self._port,
            self.check,
            True,
            request_handler=MotoRequestHandler,
        )
        self._server_ready_event.set()
        self._server.serve_forever()


@contextmanager
def s3_server() -> Iterator[CheckedMotoServer]:
    """A ``CheckedMotoServer`` on a free loopback port (its URL: ``endpoint(server)``)."""
    server = CheckedMotoServer(free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()


def endpoint(server: ThreadedMotoServer) -> str:
    host, port = server.get_host_and_port()
    return f"http://{host}:{port}"


def s3_client(url: str) -> Any:
    import boto3

    return boto3.client("s3", endpoint_url=url, **KEYS)


def s3_fields(url: str, bucket: str, prefix: str) -> dict[str, str]:
    """The service's settings (by name) for objects under ``s3://bucket/prefix`` at ``url``."""
    return {
        "storage_url": f"s3://{bucket}/{prefix}",
        "s3_endpoint_url": url,
        "s3_region": KEYS["region_name"],
        "s3_access_key_id": KEYS["aws_access_key_id"],
        "s3_secret_access_key": KEYS["aws_secret_access_key"],
    }


def s3_settings(base: Settings, url: str, bucket: str, prefix: str, **more: Any) -> Settings:
    """``base`` with its objects on ``s3://bucket/prefix`` at ``url`` (the bucket is made)."""
    client = s3_client(url)
    if bucket not in {b["Name"] for b in client.list_buckets()["Buckets"]}:
        client.create_bucket(Bucket=bucket)
    return base.model_copy(update={**s3_fields(url, bucket, prefix), **more})


def allow_browser_uploads(url: str, bucket: str, origin: str) -> None:
    """The bucket's CORS rule that lets a page on ``origin`` PUT presigned uploads."""
    s3_client(url).put_bucket_cors(
        Bucket=bucket,
        CORSConfiguration={
            "CORSRules": [
                {
                    "AllowedOrigins": [origin],
                    "AllowedMethods": ["PUT"],
                    "AllowedHeaders": ["content-type"],
                    "ExposeHeaders": ["ETag"],
                    "MaxAgeSeconds": 600,
                }
            ]
        },
    )
