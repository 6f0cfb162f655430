"""``jobfleet dashboard``: check the address and credentials, then serve with uvicorn."""

import ipaddress
import secrets
import sys

from jobfleet.settings import Settings
from ops.dashboard.app import create_app, credentials_from


class UnsafeAddress(ValueError):
    pass


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name may resolve anywhere


def serve(settings: Settings, host: str | None = None, port: int | None = None) -> int:
    import uvicorn

    host = host or settings.dashboard_host
    port = port or settings.dashboard_port
    credentials = credentials_from(settings)
    if not credentials.configured:
        if not is_loopback(host):
            raise UnsafeAddress(
                f"refusing to serve the dashboard on {host} without credentials: set "
                "JOBFLEET_DASHBOARD_TOKEN, or JOBFLEET_DASHBOARD_USER and JOBFLEET_DASHBOARD_PASSWORD"
            )
        # Loopback and nothing configured: still no page without a sign-in; a token for this run.
        token = secrets.token_urlsafe(24)
        credentials = credentials.__class__(token=token)
        print(
            f"jobfleet dashboard on http://{host}:{port}/ - no credentials configured; "
            f"sign in with this one-time token: {token}",
            file=sys.stderr,
        )
    app = create_app(settings, credentials=credentials)
    uvicorn.run(app, host=host, port=port, log_level="warning", proxy_headers=False, server_header=False)
    return 0
