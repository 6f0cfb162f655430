"""``jobfleet dashboard``: the fleet in a browser."""
