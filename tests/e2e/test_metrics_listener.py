"""Finding 8: ``/metrics`` was open on the public port and named every module, ``table.column``
and MAP_REJECTED count. ``ekms serve`` now serves it on its own listener only
(``EKMS_METRICS_HOST``/``EKMS_METRICS_PORT``), which a NetworkPolicy opens to the scraper."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.e2e.serving import embedded_settings, serving


async def test_metrics_answer_on_their_own_port_and_not_on_the_public_one(
    tmp_path: Path,
) -> None:
    settings = embedded_settings(tmp_path / "data")
    public = f"http://127.0.0.1:{settings.http_port}"
    scraper = f"http://127.0.0.1:{settings.metrics_port}"
    async with serving(settings), httpx.AsyncClient(timeout=10) as http:
        assert (await http.get(public + "/livez")).status_code == 200
        refused = await http.get(public + "/metrics")
        assert refused.status_code == 404
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["reason"] == "NOT_FOUND"
        assert "ekms_" not in refused.text

        scraped = await http.get(scraper + "/metrics")
        assert scraped.status_code == 200
        assert scraped.headers["content-type"].startswith("text/plain")
        assert 'ekms_http_requests_total{method="GET",route="/livez",status="200"}' in scraped.text
        assert "ekms_external_key_status" in scraped.text
        # Scrapes are not REST requests: they are neither counted nor routed through the app.
        assert 'route="/metrics"' not in scraped.text

        # The metrics listener serves nothing else.
        for path in ("/livez", "/readyz", "/api/v1/ekms/status", "/docs", "/metrics/"):
            assert (await http.get(scraper + path)).status_code == 404, path
        assert (await http.post(scraper + "/metrics")).status_code == 405
        assert (await http.head(scraper + "/metrics")).status_code == 200


async def test_a_blank_metrics_port_runs_no_metrics_listener(tmp_path: Path) -> None:
    settings = embedded_settings(tmp_path / "data", metrics_port="")
    assert settings.metrics_port is None
    async with serving(settings), httpx.AsyncClient(timeout=10) as http:
        assert (await http.get(f"http://127.0.0.1:{settings.http_port}/livez")).status_code == 200
