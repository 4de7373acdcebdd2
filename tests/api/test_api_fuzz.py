"""Hostile bodies at POST /api/predictions: whatever arrives, the answer is never a 500 and
every refusal has the one error shape. (SQLite only, for speed: the database is not what is
under test here.)"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from support.api import (
    TestClient,
    api_settings,
    assert_error_shape,
    client_for,
    encode,
    linked_home,
)

Orl = dict[str, list[Path]]

ASCII = st.characters(min_codepoint=32, max_codepoint=126)
CONTENT_TYPES = st.one_of(
    st.sampled_from(
        [
            "",
            "multipart/form-data",
            "multipart/form-data; boundary=",
            "multipart/form-data; boundary=b",
            "multipart/form-data; boundary=b; charset=klingon",
            "application/json",
            "application/json; charset=utf-16",
            "application/x-www-form-urlencoded",
            "image/jpeg",
            "text/plain",
        ]
    ),
    st.text(ASCII, max_size=60),
)
FIELD_NAMES = st.one_of(
    st.sampled_from(["photo", "photo", "photo", "face_index", "consent", "client", "upload_key"]),
    st.text(ASCII.filter(lambda c: c not in '"\\'), max_size=12),
)


@pytest.fixture(scope="module")
def samples(orl: Orl, nonfaces: dict[str, np.ndarray]) -> list[bytes]:
    """Real photos (a face, a non-face, a tiny one) mixed into the fuzzed parts."""
    face = orl["s1"][9].read_bytes()
    return [
        face,
        face[: len(face) // 2],
        encode(nonfaces["rocket"][::4, ::4]),
        encode(np.zeros((4, 4, 3), np.uint8)),
    ]


@pytest.fixture(scope="module")
def fuzz_client(tmp_path_factory: pytest.TempPathFactory, trained: Path) -> Iterator[TestClient]:
    tmp = tmp_path_factory.mktemp("api_fuzz")
    home = linked_home(trained, tmp / "home")
    config = api_settings(
        home,
        f"sqlite:///{tmp / 'fuzz.sqlite3'}",
        max_photos_per_request=3,
        max_request_bytes=200_000,
    )
    with client_for(config, raise_errors=False) as client:
        yield client


@st.composite
def multipart(draw: st.DrawFn, samples: list[bytes]) -> tuple[bytes, str]:
    boundary = draw(st.sampled_from(["b", "----x", "a" * 70]))
    parts = []
    for _ in range(draw(st.integers(0, 5))):
        name = draw(FIELD_NAMES)
        filename = draw(
            st.one_of(st.none(), st.text(ASCII.filter(lambda c: c != '"'), max_size=10))
        )
        ctype = draw(st.one_of(st.none(), st.sampled_from(["image/jpeg", "text/plain", "x/y"])))
        data = draw(
            st.one_of(
                st.binary(max_size=300),
                st.sampled_from(samples),
                st.sampled_from([b"0", b"1", b"-1", b"true", b"web", b"99999999999", b""]),
            )
        )
        head = f'Content-Disposition: form-data; name="{name}"'
        if filename is not None:
            head += f'; filename="{filename}"'
        if ctype is not None:
            head += f"\r\nContent-Type: {ctype}"
        parts.append(f"--{boundary}\r\n{head}\r\n\r\n".encode() + data + b"\r\n")
    ending = draw(
        st.sampled_from([f"--{boundary}--\r\n".encode()] * 3 + [b"", b"--" + boundary.encode()])
    )
    declared = draw(st.sampled_from([boundary, boundary, boundary, "other"]))
    return b"".join(parts) + ending, f"multipart/form-data; boundary={declared}"


@st.composite
def nearly_valid(draw: st.DrawFn, samples: list[bytes]) -> tuple[bytes, str]:
    """Mostly well-formed requests: real photos, form fields right or slightly wrong."""
    parts: list[tuple[str, bytes, str | None]] = [
        ("photo", draw(st.sampled_from(samples)), draw(st.sampled_from(["a.jpg", "", "x"])))
        for _ in range(draw(st.integers(1, 4)))
    ]
    for name, values in (
        ("face_index", ["0", "1", "", "-1", "x"]),
        ("consent", ["true", "false", "on", "?"]),
        ("client", ["web", "api", "bot"]),
    ):
        if draw(st.booleans()):
            parts.append((name, draw(st.sampled_from(values)).encode(), None))
    body = b""
    for name, value, filename in parts:
        head = f'Content-Disposition: form-data; name="{name}"'
        if filename is not None:
            head += f'; filename="{filename}"'
        body += f"--b\r\n{head}\r\n\r\n".encode() + value + b"\r\n"
    return body + b"--b--\r\n", "multipart/form-data; boundary=b"


def bodies(samples: list[bytes]) -> st.SearchStrategy[tuple[bytes, str]]:
    json_values = st.recursive(
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats()
        | st.text(max_size=20)
        | st.sampled_from(["abc", "A" * 32, "web", "api"]),
        lambda children: (
            st.lists(children, max_size=4)
            | st.dictionaries(
                st.sampled_from(["upload_key", "face_index", "consent", "client", "x"]), children
            )
        ),
        max_leaves=8,
    )
    return st.one_of(
        st.tuples(st.binary(max_size=2000), CONTENT_TYPES),
        multipart(samples),
        nearly_valid(samples),
        st.tuples(
            st.fixed_dictionaries(
                {"upload_key": st.sampled_from(["abc", "A" * 32, "", "a/b"])},
                optional={"face_index": json_values, "consent": json_values},
            ).map(lambda v: json.dumps(v).encode()),
            st.just("application/json"),
        ),
        st.tuples(json_values.map(lambda v: json.dumps(v).encode()), st.just("application/json")),
    )


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_arbitrary_bodies_never_break_the_service(
    fuzz_client: TestClient, samples: list[bytes], data: st.DataObject
) -> None:
    content, content_type = data.draw(bodies(samples))
    headers = {"content-type": content_type} if content_type else {}
    r = fuzz_client.post("/api/predictions", content=content, headers=headers)
    event(f"status {r.status_code}")
    assert r.status_code < 500, (r.status_code, r.text[:500], content[:200], content_type)
    if r.status_code == 201:
        assert r.json()["probabilities"]
    else:
        assert_error_shape(r.json())


def test_real_photo_in_a_fuzzed_wrapper_still_works(
    fuzz_client: TestClient, samples: list[bytes]
) -> None:
    body = (
        b'--b\r\nContent-Disposition: form-data; name="photo"; filename="x"\r\n'
        b"Content-Type: text/html\r\n\r\n" + samples[0] + b"\r\n--b--\r\n"
    )
    r = fuzz_client.post(
        "/api/predictions",
        content=body,
        headers={"content-type": "multipart/form-data; boundary=b"},
    )
    assert r.status_code == 201, r.text
    assert r.json()["label"] == "s1"
