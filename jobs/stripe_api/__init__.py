"""Stripe for the jobs: the client (``client``) and the lock-ask-commit batch (``batches``) that
``sessions.expire_holds`` and ``licenses.reconcile`` both run."""
