"""Retention: policies that purge or close Pickatale rows past their age, in chunks."""
