"""When the periodic sweeps run and what the retention policies keep: data files, read by workers/."""
