"""Shared bits of the tests that call a service in-process."""

# TestClient's default Host (testserver) is not among a loopback service's allowed names.
LOOPBACK_URL = "http://127.0.0.1"
