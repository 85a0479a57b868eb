"""A demo backend (echo, chat and a browser page) to run behind wstunnel."""
