"""
The HTTP token of RFC 9110 section 5.6.2, the grammar of header names and
methods: one definition for the configuration, which checks the header names
its directives set or hide, and for the wire, which checks them in messages.
"""

from __future__ import annotations

__all__ = ["TOKEN"]

# A regular expression, as text: the wire compiles it as bytes.
TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
