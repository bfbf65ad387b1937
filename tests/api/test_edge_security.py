"""Security headers on every response, the docs page's CSP, HSTS and CORS."""

from __future__ import annotations

import re
from urllib.parse import urljoin, urlsplit

import httpx
import pytest

from tests.api.conftest import MakeClient, Register

APP_ORIGIN = "https://app.example.com"
pytestmark = pytest.mark.settings(cors_origins=[APP_ORIGIN])

EXPECTED = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cross-origin-opener-policy": "same-origin",
}


def csp_of(response: httpx.Response) -> dict[str, list[str]]:
    """The Content-Security-Policy as {directive: sources}."""
    policy: dict[str, list[str]] = {}
    for directive in response.headers["content-security-policy"].split(";"):
        name, *sources = directive.split()
        policy[name] = sources
    return policy


def assert_hardened(response: httpx.Response) -> None:
    for name, value in EXPECTED.items():
        assert response.headers.get(name) == value, (response.request.url, name)
    assert "content-security-policy" in response.headers
    assert "strict-transport-security" not in response.headers  # plain http


async def test_every_kind_of_response_carries_the_headers(
    client: httpx.AsyncClient, register: Register
) -> None:
    admin = await register()
    responses = [
        await client.get("/health/live"),  # 200
        await client.get("/api/v1/users/me", headers=admin.auth),  # 200
        await client.get("/api/v1/users/me"),  # 401
        await client.get("/api/v1/users", headers={"Authorization": "Bearer x"}),  # 401
        await client.get("/api/v1/nowhere"),  # 404 (unrouted)
        await client.put("/api/v1/users/me", headers=admin.auth),  # 405
        await client.post("/api/v1/auth/login", json={}),  # 422
        await client.post("/api/v1/auth/login", content=b"x" * (65 * 1024)),  # 413
        await client.post("/api/v1/auth/logout", headers=admin.auth),  # 204
    ]
    assert [response.status_code for response in responses] == [
        200,
        200,
        401,
        401,
        404,
        405,
        422,
        413,
        204,
    ]
    for response in responses:
        assert_hardened(response)
        policy = csp_of(response)
        # Data responses may load, frame and submit nothing.
        assert policy["default-src"] == ["'none'"]
        assert policy["frame-ancestors"] == ["'none'"]
        assert "script-src" not in policy


async def test_the_docs_csp_allows_what_the_docs_page_loads(client: httpx.AsyncClient) -> None:
    docs = await client.get("/docs")
    assert docs.status_code == 200
    assert_hardened(docs)
    policy = csp_of(docs)
    assert policy["frame-ancestors"] == ["'none'"]
    assert "'unsafe-eval'" not in policy["script-src"]
    page = str(docs.url)

    def allowed(url: str, directive: str) -> bool:
        target = urlsplit(urljoin(page, url))
        if target.netloc == urlsplit(page).netloc:
            return "'self'" in policy[directive]
        return any(
            source.rstrip("/") == f"{target.scheme}://{target.netloc}"
            for source in policy[directive]
        )

    scripts = re.findall(r'<script[^>]+src="([^"]+)"', docs.text)
    styles = re.findall(r'<link[^>]+rel="stylesheet"[^>]+href="([^"]+)"', docs.text)
    styles += re.findall(r'<link[^>]+href="([^"]+)"[^>]+rel="stylesheet"', docs.text)
    assert scripts, "the docs page loads Swagger UI's script"
    assert styles, "the docs page loads Swagger UI's style"
    for url in scripts:
        assert allowed(url, "script-src"), url
    for url in styles:
        assert allowed(url, "style-src"), url
    if re.search(r"<script>(?!\s*</script>)", docs.text):  # an inline bootstrap script
        assert "'unsafe-inline'" in policy["script-src"]
    # Whatever the page loads from this server is really there.
    for url in scripts + styles:
        if urlsplit(urljoin(page, url)).netloc == urlsplit(page).netloc:
            asset = await client.get(urljoin(page, url))
            assert asset.status_code == 200, url
    # The docs' looser policy is for the docs only.
    assert csp_of(await client.get("/openapi.json"))["default-src"] == ["'none'"]
    assert "script-src" not in csp_of(await client.get("/openapi.json"))


async def test_hsts_only_over_https(make_client: MakeClient) -> None:
    secure = await make_client(base_url="https://fieldsync.test")
    response = await secure.get("/health/live")
    assert response.status_code == 200
    hsts = response.headers["strict-transport-security"]
    assert "max-age=" in hsts
    assert int(re.search(r"max-age=(\d+)", hsts).group(1)) >= 15_552_000  # type: ignore[union-attr]
    plain = await make_client(base_url="http://fieldsync.test")
    assert "strict-transport-security" not in (await plain.get("/health/live")).headers


def preflight(origin: str) -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": "PATCH",
        "Access-Control-Request-Headers": "authorization, content-type, if-match",
    }


async def test_cors_preflight_from_the_configured_origin(client: httpx.AsyncClient) -> None:
    response = await client.options("/api/v1/users/me", headers=preflight(APP_ORIGIN))
    assert response.status_code == 200, response.text
    assert response.headers["access-control-allow-origin"] == APP_ORIGIN
    assert "PATCH" in response.headers["access-control-allow-methods"]
    allowed_headers = response.headers["access-control-allow-headers"].lower()
    for header in ("authorization", "content-type", "if-match"):
        assert header in allowed_headers
    assert_hardened(response)

    simple = await client.get("/health/live", headers={"Origin": APP_ORIGIN})
    assert simple.headers["access-control-allow-origin"] == APP_ORIGIN
    assert "x-request-id" in simple.headers["access-control-expose-headers"].lower()


@pytest.mark.parametrize(
    "origin", ["https://evil.example", "http://app.example.com", "https://app.example.com.evil"]
)
async def test_cors_refuses_other_origins(client: httpx.AsyncClient, origin: str) -> None:
    response = await client.options("/api/v1/users/me", headers=preflight(origin))
    assert response.status_code >= 400
    assert "access-control-allow-origin" not in response.headers
    simple = await client.get("/health/live", headers={"Origin": origin})
    assert simple.status_code == 200
    assert "access-control-allow-origin" not in simple.headers
