"""Operating the fleet: the dashboard, /metrics, domain health and the terminal status view."""
