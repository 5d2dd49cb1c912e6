"""gzip for bodies over 1 KB when the client accepts it (RFC 9110), never for the stream."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path

import pytest

import joblog
from joblog.api.app import create_app
from joblog.api.compression import accepts_gzip
from tests.support.api import ApiClient, api_client


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[ApiClient, joblog.Tracker]]:
    url = f"sqlite:///{tmp_path / 'gzip.db'}"
    tracker = joblog.Tracker(url, flush_interval=0.01)
    try:
        with api_client(create_app(url)) as client:
            yield client, tracker
    finally:
        tracker.close()


def big_job(tracker: joblog.Tracker) -> str:
    job = tracker.start_job("failover", "live", metadata={"notes": "x" * 2000})
    tracker.flush(30)
    return job.id


class TestAcceptsGzip:
    @pytest.mark.parametrize(
        "header",
        ["gzip", "GZIP", "deflate, gzip", "gzip;q=0.5", "x-gzip", "*", "br;q=1, *;q=0.1"],
    )
    def test_accepted(self, header: str) -> None:
        assert accepts_gzip(header)

    @pytest.mark.parametrize(
        "header",
        [
            None,
            "",
            "identity",
            "gzip;q=0",
            "gzip; q=0.000",
            "*;q=0",
            "gzip;q=0, *",
            "gzip;q=abc",
            "gzip;q=2",
            "gzipper",
            "br, deflate",
            "gzip" + ", x" * 3000,
        ],
    )
    def test_refused(self, header: str | None) -> None:
        assert not accepts_gzip(header)


class TestResponses:
    def test_a_large_status_body_is_gzipped(self, api: tuple[ApiClient, joblog.Tracker]) -> None:
        client, tracker = api
        job_id = big_job(tracker)
        response = client.get(f"/api/v1/jobs/{job_id}", headers={"Accept-Encoding": "gzip"})
        assert response.headers["content-encoding"] == "gzip"
        assert "accept-encoding" in response.headers["vary"].lower()
        assert response.json()["job"]["id"] == job_id  # httpx decoded it

    def test_not_without_accept_encoding(self, api: tuple[ApiClient, joblog.Tracker]) -> None:
        client, tracker = api
        job_id = big_job(tracker)
        response = client.get(f"/api/v1/jobs/{job_id}", headers={"Accept-Encoding": "identity"})
        assert "content-encoding" not in response.headers

    def test_not_when_refused_with_q_zero(self, api: tuple[ApiClient, joblog.Tracker]) -> None:
        client, tracker = api
        job_id = big_job(tracker)
        response = client.get(f"/api/v1/jobs/{job_id}", headers={"Accept-Encoding": "gzip;q=0"})
        assert "content-encoding" not in response.headers

    def test_not_for_small_bodies(self, api: tuple[ApiClient, joblog.Tracker]) -> None:
        client, _ = api
        response = client.get("/healthz", headers={"Accept-Encoding": "gzip"})
        assert "content-encoding" not in response.headers

    def test_the_etag_holds_for_the_gzipped_body(
        self, api: tuple[ApiClient, joblog.Tracker]
    ) -> None:
        client, tracker = api
        job_id = big_job(tracker)
        first = client.get(f"/api/v1/jobs/{job_id}", headers={"Accept-Encoding": "gzip"})
        again = client.get(
            f"/api/v1/jobs/{job_id}",
            headers={"Accept-Encoding": "gzip", "If-None-Match": first.headers["etag"]},
        )
        assert again.status_code == 304

    def test_the_stream_is_never_gzipped(self, api: tuple[ApiClient, joblog.Tracker]) -> None:
        client, tracker = api
        job = tracker.start_job("failover", "live", metadata={"notes": "x" * 2000})
        job.complete()
        tracker.flush(30)
        response = client.get(f"/api/v1/jobs/{job.id}/stream", headers={"Accept-Encoding": "gzip"})
        assert response.headers["content-type"].startswith("text/event-stream")
        assert "content-encoding" not in response.headers
        assert b"event: snapshot" in response.content
        with pytest.raises(OSError):
            gzip.decompress(response.content)
