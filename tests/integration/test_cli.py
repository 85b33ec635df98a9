"""The `orders` command line against the live stack: `status`, `get` and `watch` (the SSE
stream), run as a user runs them (the entry point, in a subprocess with a time limit)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration.conftest import Api, wait_until

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
ORDERS = Path(sys.executable).with_name("orders")
FLOW = ["PENDING", "RESERVED", "PAID", "SHIPPED", "DELIVERED"]


def _env() -> dict[str, str]:
    return os.environ | {"COLUMNS": "200", "NO_COLOR": "1"}


def orders(*args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    assert ORDERS.exists(), f"the `orders` entry point is not installed at {ORDERS}"
    return subprocess.run(
        [str(ORDERS), *args],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


class Watch:
    """`orders watch` in the background; its output lines as they come."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [str(ORDERS), "watch", *args],
            cwd=ROOT,
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def statuses(self) -> list[str]:
        return [line.split()[1] for line in self.lines if len(line.split()) > 1]

    def finish(self, timeout: float) -> tuple[int, str]:
        try:
            rc = self.proc.wait(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(timeout=5)
        assert self.proc.stderr is not None
        return rc, self.proc.stderr.read()


def test_watch_follows_an_order_live_to_its_final_status_and_get_shows_it(
    api: Api, customer: str
) -> None:
    api.fault("shipping-hold", True, customer)  # the parcel waits: the watch must be live
    try:
        order_id = api.place_ok(customer, [("SKU-3", 1)])
        watch = Watch(order_id, "--timeout", "90")
        wait_until(lambda: "PAID" in watch.statuses(), timeout=30, what="watch to print PAID")
        assert watch.proc.poll() is None, "the watch must wait while the order is not final"
    finally:
        api.fault("shipping-hold", False, customer)
    rc, err = watch.finish(timeout=90)
    assert rc == 0, (watch.lines, err)
    assert watch.statuses() == FLOW, watch.lines
    assert watch.lines[-1].endswith("(final)")

    shown = orders("get", order_id)
    assert shown.returncode == 0, shown.stderr
    for text in (order_id, "DELIVERED", "ShipmentDelivered", customer, "SKU-3"):
        assert text in shown.stdout
    raw = orders("get", order_id, "--json")
    assert raw.returncode == 0, raw.stderr
    body = json.loads(raw.stdout)
    assert body["orderId"] == order_id and body["status"] == "DELIVERED"
    assert [e["status"] for e in body["timeline"]][0] == "PENDING"


def test_watch_gives_up_with_124_at_its_timeout(api: Api, customer: str) -> None:
    api.fault("shipping-hold", True, customer)
    try:
        order_id = api.place_ok(customer, [("SKU-4", 1)])
        api.wait_status(customer, order_id, "PAID")
        # held at PAID (shipping-hold): the watch prints the three events so far, then waits
        # out its whole --timeout (long enough for a slow box to start the CLI and connect)
        result = orders("watch", order_id, "--timeout", "10", timeout=60)
        assert result.returncode == 124, (result.stdout, result.stderr)
        assert "timed out after 10s; last status: PAID" in result.stderr
        assert [line.split()[1] for line in result.stdout.splitlines()] == FLOW[:3]
    finally:
        api.fault("shipping-hold", False, customer)
    api.wait_status(customer, order_id, "DELIVERED")


def test_an_unknown_order_is_not_found() -> None:
    missing = str(uuid.uuid4())
    for command in ("get", "watch"):
        result = orders(command, missing, timeout=30)
        assert result.returncode == 1, (command, result.stdout, result.stderr)
        assert f"order {missing} not found" in result.stderr
    bad = orders("get", "not-an-id")
    assert bad.returncode == 2 and "Invalid value" in bad.stderr


_PARTS = ("postgres", "redis", "kafka", "ray", "gateway")


def _status_once_up(*extra: str, up: Callable[[str], bool]) -> str:
    """`orders status`'s output once it exits 0 and `up` holds for it: earlier tests kill and
    restart actors, and a probe slower than its bound on a busy box reads as not up."""
    seen: dict[str, subprocess.CompletedProcess[str]] = {}

    def settled() -> bool:
        seen["r"] = result = orders("status", *extra, timeout=60)
        return result.returncode == 0 and up(result.stdout)

    try:
        wait_until(settled, timeout=120, what="orders status: everything up", interval=2)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; last: {seen['r'].stdout} {seen['r'].stderr}") from None
    return seen["r"].stdout


def _every_part_up(out: str) -> bool:
    rows = [line.split()[:2] for line in out.splitlines()]
    return all([part, "up"] in rows for part in _PARTS) and "consumer:payment" in out


def _ready_up(out: str) -> bool:
    ready = json.loads(out)["ready"]  # null: the actors could not be read
    return ready is not None and ready["status"] == "up"


def test_status_shows_every_part_the_tables_and_the_lag() -> None:
    out = _status_once_up(up=_every_part_up)
    # the dashboard asks for Ray's token: with it (the stack's environment) it answers
    assert "Ray 2." in out and "dashboard not answering" not in out, out
    assert "default rows" in out
    tables = ("orders", "order_events", "notifications", "processed_events", "outbox")
    for table in (*tables, "reservations", "reservation_holds"):
        assert any(line.split()[1:2] == [table] for line in out.splitlines()), (table, out)
    assert "consumer:payment" in out and "consumer lag" in out
    # the retention view: each partitioned history table with its window and next drop
    assert "retention (pg_partman" in out
    for table, window in (("processed_events", "2 d"), ("order_events", "30 d")):
        rows = [line for line in out.splitlines() if line.split()[1:2] == [table]]
        assert any(window in row for row in rows), (table, out)
    assert "next drop" in out
    for group in ("inventory", "payment", "shipping", "notification"):
        assert any(line.split()[1:2] == [group] for line in out.splitlines()), (group, out)


def test_status_as_json_is_one_document_of_the_same_report() -> None:
    out = _status_once_up("--json", up=_ready_up)
    report = json.loads(out)
    assert report["allUp"] is True
    assert {p["name"]: p["up"] for p in report["stack"]} == dict.fromkeys(_PARTS, True)
    assert report["ready"]["status"] == "up" and "relay" in report["ready"]["checks"]
    assert {t["name"] for t in report["tables"]} >= {"orders", "outbox", "processed_events"}
    windows = {t["table"]: t["retention"] for t in report["retention"]}
    assert windows["processed_events"] == 2 * 86_400 and windows["order_events"] == 30 * 86_400
    groups = {g["group"] for g in report["consumerLag"]}
    assert groups == {"inventory", "payment", "shipping", "notification"}
