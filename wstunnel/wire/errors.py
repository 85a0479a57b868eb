"""
Errors that end a request, and the small pages that explain them.

A :class:`RequestError` carries the status to answer with (the h11 /
wsproto ``error_status_hint`` idea), so the code that detects a problem
decides the answer and the protocol layer only writes it.
"""

from __future__ import annotations

from http import HTTPStatus

__all__ = ["RequestError", "error_page", "reason_phrase"]

SERVER_TOKEN = "wstunnel"

# RFC 9110 wording, pinned here because Python's HTTPStatus phrases change
# between versions (413 and 414 did in 3.13).  nginx spells a few its own
# way ("504 Gateway Time-out"); doc/proxying.md lists the differences.
_REASONS = {s.value: s.phrase for s in HTTPStatus}
_REASONS.update(
    {
        413: "Content Too Large",
        414: "URI Too Long",
        421: "Misdirected Request",
        422: "Unprocessable Content",
        499: "Client Closed Request",
    }
)


class RequestError(Exception):
    """A request that cannot be served, with the status that says why."""

    def __init__(self, status: int, detail: str, note: str | None = None, level: str = "info") -> None:
        super().__init__(status, detail)
        self.status = status
        self.detail = detail
        self.note = note  # nginx's sentence on the page, for its pages that have one
        self.level = level  # how loudly the refusal is logged: "info", "error", or "" for not at all

    def __str__(self) -> str:
        return f"{self.status} {reason_phrase(self.status)}: {self.detail}"


def reason_phrase(status: int) -> str:
    return _REASONS.get(status, "Unknown")


def error_page(status: int, note: str | None = None) -> bytes:
    """
    The HTML body of an error answer, in nginx's shape.  nginx's pages for
    its internal codes sent as 400 (497: plain HTTP to an HTTPS port) put a
    ``note`` in the title and under the heading.
    """
    heading = f"{status} {reason_phrase(status)}"
    title = heading if note is None else f"{status} {note}"
    explained = "" if note is None else f"<center>{note}</center>\r\n"
    return (
        f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n"
        f"<center><h1>{heading}</h1></center>\r\n{explained}"
        f"<hr><center>{SERVER_TOKEN}</center>\r\n</body>\r\n</html>\r\n"
    ).encode("ascii")
