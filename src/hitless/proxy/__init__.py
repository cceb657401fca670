"""The hitless proxy: holds the public ports, moves traffic between instances, holds requests.

Run it with `hitless proxy`; drive it with `hitless.proxy.admin.client.AdminClient`.
"""

from hitless.proxy.config import DEFAULT_ADMIN_SOCKET, FrontendConfig, HealthCheck, HoldLimits

__all__ = ["DEFAULT_ADMIN_SOCKET", "FrontendConfig", "HealthCheck", "HoldLimits"]
