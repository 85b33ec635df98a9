"""A Server-Sent Events parser (the WHATWG event-stream format), fed one line at a time."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Event:
    event: str  # "message" unless the stream named it
    data: str
    id: str | None = None


@dataclass
class Parser:
    """`feed(line)` returns the event a blank line completes, else None. Comment lines (`:`,
    the server's keep-alive pings) and unknown fields are ignored; `id` persists across events,
    as the format says."""

    last_id: str | None = None
    _event: str = ""
    _data: list[str] = field(default_factory=list)

    def feed(self, line: str) -> Event | None:
        line = line.rstrip("\r\n")
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id" and "\0" not in value:
            self.last_id = value
        return None

    def _dispatch(self) -> Event | None:
        event, data = self._event or "message", self._data
        self._event, self._data = "", []
        if not data:
            return None
        return Event(event, "\n".join(data), self.last_id)
