"""`rae-serve`: the one command that runs a service, in its image and wherever else it runs.

The image and the Helm chart start every service with this command; its environment says which
service (`RAE_SERVICE`), where it listens (`RAE_HOST`, `RAE_PORT`) and how long a stopping
service lets requests in flight finish (`UVICORN_TIMEOUT_GRACEFUL_SHUTDOWN`). Everything else is
the service's own settings class, read by its `create_app`.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from typing import Literal, TypeVar

import uvicorn
from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["DEFAULT_PORTS", "ServeSettings", "main", "read_environment"]

S = TypeVar("S", bound=BaseSettings)

ServiceName = Literal["gateway", "memory", "ml", "graph", "reflection", "cost", "events"]

#: Each service's port when RAE_PORT is not set (docs/ARCHITECTURE.md).
DEFAULT_PORTS: Mapping[str, int] = {
    "gateway": 8000,
    "memory": 8001,
    "ml": 8002,
    "graph": 8003,
    "reflection": 8004,
    "cost": 8005,
    "events": 8006,
}


class ServeSettings(BaseSettings):
    """How `rae-serve` runs a service (no `.env` file: the process environment only)."""

    model_config = SettingsConfigDict(extra="ignore")

    rae_service: ServiceName
    # All interfaces: in a pod, the kubelet's probes and the Service reach the pod's address.
    rae_host: str = "0.0.0.0"
    rae_port: int | None = Field(default=None, ge=1, le=65535)
    # After SIGTERM, requests in flight get this long, then are cancelled: a request stuck on a
    # dependency cannot hold a pod past its grace period.
    uvicorn_timeout_graceful_shutdown: int = Field(default=20, ge=1)

    @property
    def port(self) -> int:
        return self.rae_port or DEFAULT_PORTS[self.rae_service]


def read_environment(cls: type[S], program: str) -> S | None:
    """A command's settings from the process environment (a container's whole interface); None,
    with each wrong or missing variable named on stderr, when they do not validate."""
    try:
        return cls()
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']).upper()}: {error['msg']}" for error in exc.errors()
        )
        print(f"{program}: {problems}", file=sys.stderr)  # noqa: T201
        return None


def main(argv: Sequence[str] | None = None) -> int:
    """Serve `RAE_SERVICE` until SIGTERM; exit 2 with the reason when the environment is wrong."""
    del argv  # no options: the environment is the whole interface, as in a container
    settings = read_environment(ServeSettings, "rae-serve")
    if settings is None:
        return 2
    uvicorn.run(
        f"rae_{settings.rae_service}.main:create_app",
        factory=True,
        host=settings.rae_host,
        port=settings.port,
        timeout_graceful_shutdown=settings.uvicorn_timeout_graceful_shutdown,
        # The services log each request themselves, in JSON, with its trace id.
        access_log=False,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
