"""/ready names the degraded part (here Redis, cut through a proxy this test starts) while
/health stays the liveness probe."""

from __future__ import annotations

import asyncio
import urllib.parse

from api.config import Settings
from tests.app_fixtures import _client
from tests.tcp_proxy import TcpProxy


async def test_ready_says_degraded_while_redis_is_cut(app_settings: Settings,
                                                      redis_url: str) -> None:
    url = urllib.parse.urlsplit(redis_url)
    async with TcpProxy(url.hostname or "127.0.0.1", url.port or 6379) as proxy:
        via_proxy = url._replace(netloc=f"127.0.0.1:{proxy.port}").geturl()
        client = await _client(app_settings, redis_url=via_proxy)
        try:
            resp = await client.get("/ready")
            body = await resp.json()
            assert resp.status == 200, body
            assert body["status"] == "ready"
            assert body["parts"]["postgres"]["status"] == "ok"
            assert body["parts"]["redis"]["status"] == "ok"

            proxy.cut("reset")
            resp = await client.get("/ready")
            body = await resp.json()
            assert resp.status == 503
            assert body["status"] == "degraded"
            assert body["parts"]["redis"]["status"] == "degraded"
            assert body["parts"]["redis"]["detail"]
            assert body["parts"]["postgres"]["status"] == "ok"
            health = await client.get("/health")
            assert health.status == 200 and (await health.json())["status"] == "ok"

            proxy.restore()
            resp = await client.get("/ready")
            assert resp.status == 200, await resp.json()
        finally:
            await client.close()


async def test_ready_lists_the_pbx_source(pbx_client) -> None:
    resp = await pbx_client.get("/ready")
    body = await resp.json()
    assert resp.status == 200, body
    assert body["parts"]["pbx:ari"] == {"status": "ok", "detail": ""}


async def test_ready_says_degraded_while_the_pbx_is_away(pbx_client, fake_asterisk) -> None:
    await fake_asterisk.stop()  # Asterisk gone; the stream keeps trying to reconnect
    for _ in range(100):
        resp = await pbx_client.get("/ready")
        if resp.status == 503:
            break
        await asyncio.sleep(0.05)
    body = await resp.json()
    assert resp.status == 503, body
    assert body["parts"]["pbx:ari"]["status"] == "degraded"
    assert body["parts"]["postgres"]["status"] == "ok" and body["parts"]["redis"]["status"] == "ok"
