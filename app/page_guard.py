"""An ASGI middleware that keeps the API description off the login page.

Gradio 6 renders every page with ``window.gradio_api_info`` embedded, the login page of an
``--auth`` server too, although ``/gradio_api/info`` itself answers 401 there: anyone could
read every endpoint and parameter without logging in. This middleware blanks it on pages whose
config says a login is required (``"auth_required": true``). Written here because Gradio has
no option for it; it passes every other response through untouched.
"""

from __future__ import annotations

import re

LOGIN_PAGE = re.compile(rb'"auth_required":\s*true')
API_INFO = re.compile(rb"window\.gradio_api_info = .*?;</script>", re.S)


def without_api_info(body: bytes) -> bytes:
    """The page with its embedded API description blanked when it is the login page."""
    if not LOGIN_PAGE.search(body):
        return body
    return API_INFO.sub(b"window.gradio_api_info = null;</script>", body)


class HideApiInfoWhenLoggedOut:
    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope.get("method") != "GET":
            await self.app(scope, receive, send)
            return
        start: dict | None = None
        chunks: list[bytes] = []

        async def capture(message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                headers = dict(message.get("headers", []))
                if headers.get(b"content-type", b"").startswith(b"text/html"):
                    start = message  # held until the whole page is here
                    return
            elif message["type"] == "http.response.body" and start is not None:
                chunks.append(message.get("body", b""))
                if message.get("more_body"):
                    return
                body = without_api_info(b"".join(chunks))
                headers = [(k, v) for k, v in start["headers"] if k.lower() != b"content-length"]
                headers.append((b"content-length", str(len(body)).encode()))
                await send({**start, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
            await send(message)

        await self.app(scope, receive, capture)
