"""The configuration: an nginx-syntax file read into frozen values. No Twisted."""
