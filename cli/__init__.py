"""The ``jobfleet`` command line: the entry points, above ``ops`` and ``workers``."""
