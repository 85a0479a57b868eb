"""Which peer an attempt goes to, and whether to try another. No Twisted."""
