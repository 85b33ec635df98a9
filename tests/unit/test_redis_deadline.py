"""The platform's Redis clients (adapters.redis_clients) against a server that takes a command
and never answers it, as a paused or overloaded Redis does: the command times out once and is
not sent again, since Redis may run it late (an INCR resent counted one failure twice)."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator

import pytest
from redis.exceptions import TimeoutError as RedisTimeoutError

from adapters.redis_clients import async_client, sync_client


class _Silent:
    """Answers the connection's handshake, never an INCRBY; records every command line."""

    def __init__(self) -> None:
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self.received: list[bytes] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            while data := conn.recv(65536):
                self.received.append(data)
                if b"HELLO" in data:
                    conn.sendall(b"%1\r\n+proto\r\n:3\r\n")
                elif b"INCRBY" not in data:
                    conn.sendall(b"+OK\r\n" * data.count(b"*"))

    def incrs(self) -> int:
        return sum(d.count(b"INCRBY") for d in self.received)

    def close(self) -> None:
        self._sock.close()


@pytest.fixture
def silent() -> Iterator[_Silent]:
    server = _Silent()
    yield server
    server.close()


def test_a_timed_out_command_is_not_sent_again(silent: _Silent) -> None:
    client = sync_client(f"redis://127.0.0.1:{silent.port}")  # pybreaker's storage
    with pytest.raises(RedisTimeoutError):
        client.incr("fail_counter")
    assert silent.incrs() == 1, silent.received


def test_the_async_client_sends_a_timed_out_command_once(silent: _Silent) -> None:
    async def scenario() -> None:
        client = async_client(f"redis://127.0.0.1:{silent.port}")
        try:
            with pytest.raises(RedisTimeoutError):
                await client.incr("ratelimit")
        finally:
            await client.aclose()

    asyncio.run(scenario())
    assert silent.incrs() == 1, silent.received
