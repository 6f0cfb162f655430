"""The arq runtime: workers per queue, the runner that adapts a catalog job to arq, failure record,
schedules, health records, logging and the command line."""
