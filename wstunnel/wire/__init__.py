"""HTTP/1.1 and the PROXY protocol on the wire: bytes to values and back. No Twisted."""
