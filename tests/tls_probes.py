"""Questions the tests put to the local stack's Postgres and Redis over TLS (cluster/tls.sh),
shared by the deploy and the multi-node tests: each answers None (False) when the server refuses
the client (no TLS, another CA); and whether Ray's gRPC takes a TLS client."""

from __future__ import annotations

import socket
import ssl

import psycopg
import redis


def pg_over_tls(dsn: str) -> bool | None:
    """Whether a session of `dsn` runs over TLS; None when the server refuses it."""
    try:
        with psycopg.connect(dsn, connect_timeout=10) as conn:
            row = conn.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            found = row.fetchone()
            return bool(found and found[0])
    except psycopg.OperationalError:
        return None


def redis_user(url: str, **options: str) -> str | None:
    """The user Redis at `url` takes the client for; None when it refuses it."""
    try:
        with redis.Redis.from_url(url, socket_timeout=10, **options) as client:
            return str(client.acl_whoami())
    except redis.RedisError:
        return None


def grpc_answers(host: str, port: int, cafile: str, cert: tuple[str, str] | None = None) -> bool:
    """Whether the gRPC server at host:port (Ray's, with RAY_USE_TLS) answers an HTTP/2 client
    over TLS that checks the server's certificate and address against `cafile`, presenting the
    client certificate `cert` (certificate, key) or none; False when it closes the connection,
    as a mutual-TLS server does to a client without one of its CA's certificates."""
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.set_alpn_protocols(["h2"])
    if cert is not None:
        ctx.load_cert_chain(*cert)
    preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes.fromhex("000000040000000000")
    try:
        with (
            socket.create_connection((host, port), timeout=10) as raw,
            ctx.wrap_socket(raw, server_hostname=host) as tls,
        ):
            tls.sendall(preface)
            return bool(tls.recv(64))  # its SETTINGS frame; b"": closed
    except (OSError, ssl.SSLError):
        return False
