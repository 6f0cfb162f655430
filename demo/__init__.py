"""Demo data: realistic rows for `jobfleet demo` and the row builders the tests share."""
