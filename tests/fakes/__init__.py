"""Local HTTP servers that speak third-party APIs for the tests."""
