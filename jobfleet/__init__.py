"""jobfleet: the job fleet's public contract (catalog, payloads, wire format, producer)."""
