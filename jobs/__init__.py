"""The business logic of each job: rules over the shared databases, free of arq, Redis and HTTP."""
