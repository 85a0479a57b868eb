"""The Twisted protocols: the client side, the upstream side, the tunnel."""
