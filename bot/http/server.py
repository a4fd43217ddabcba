"""Serving the HTTP app with uvicorn inside the bot's own asyncio loop (start/stop, no run())."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator

import uvicorn
from starlette.types import ASGIApp

log = logging.getLogger(__name__)


class _EmbeddedServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # The host process owns SIGINT/SIGTERM and stops us through `HttpServer.stop`.
        yield


class HttpServer:
    """uvicorn on `host:port` as a task of the running loop; port 0 picks a free port."""

    def __init__(
        self, app: ASGIApp, host: str = "127.0.0.1", port: int = 8000, *, grace: float = 5.0
    ) -> None:
        self.app, self.host, self.port = app, host, port
        self.grace = grace
        self._server: _EmbeddedServer | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self, startup_timeout: float = 10.0) -> None:
        """Listen, then return; raises if the port cannot be bound."""
        # IPPROTO_TCP named explicitly: asyncio sets TCP_NODELAY only on sockets whose proto
        # says TCP, and without it every answer waits ~40 ms for a delayed ACK.
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError:
            sock.close()
            raise
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            lifespan="off",
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=int(self.grace),
            proxy_headers=False,
        )
        self._server = _EmbeddedServer(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]), name="lacre-http")
        async with asyncio.timeout(startup_timeout):
            while not self._server.started:
                if self._task.done():
                    self._task.result()  # raises the start-up error
                    raise RuntimeError("the HTTP server stopped while starting")
                await asyncio.sleep(0.01)
        log.info("HTTP app listening on %s:%s", self.host, self.port)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def stop(self) -> None:
        """Finish the requests in flight (up to `grace` seconds), then close."""
        if self._server is None or self._task is None:
            return
        self._server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(self._task), self.grace + 5)
        except TimeoutError:
            self._server.force_exit = True
            await asyncio.gather(self._task, return_exceptions=True)
        self._server, self._task = None, None
