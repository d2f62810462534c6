"""Where trials run: a Ray cluster started on this machine (the default, nothing to set up) or one joined by its
address (``ray://HOST:PORT`` through Ray Client, or ``HOST:PORT`` of its head).

An address that does not answer is one line naming it, after a plain TCP probe of a few seconds, instead of Ray's
own retries. Every remote node must run this version of the studio: checked once before the first trial.
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass
from typing import Any

from studio.errors import StudioError

PROBE_TIMEOUT_S = 3.0
JOIN_ATTEMPTS = 3
LOCAL_OBJECT_STORE_BYTES = 1_000_000_000  # models and data of one search; Ray's default takes 30 % of memory
RAY_FIX = "start one with `ray start --head` on that machine (Ray Client listens on port 10001), or check the address"


class _EnabledTokenNotice(logging.Filter):
    """Drops the line Ray logs when a local cluster takes its default, token authentication ("enabled … set
    RAY_AUTH_MODE=disabled to opt out"): the studio wants it on, and a search's output is its own lines. Setting
    ``RAY_AUTH_MODE=token`` instead silences it only before the first ``import ray`` in the process (set after,
    it broke the local cluster's start), and Ray's other notices — a cluster joined *without* authentication —
    still reach the user."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Token authentication is enabled" not in record.getMessage()


_TOKEN_NOTICE = _EnabledTokenNotice()


@dataclass
class Cluster:
    address: str | None  # None: started here
    workers: int
    remote_trial: Any  # the Ray remote function running studio.search.trial.run_trial

    def describe(self) -> str:
        return (f"Ray cluster at {self.address}" if self.address
                else f"Ray on this machine, {self.workers} worker process(es)")


def _host_port(address: str) -> tuple[str, int]:
    text = address.removeprefix("ray://")
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise StudioError(f"--cluster {address!r} is not HOST:PORT", fix="write ray://HOST:PORT, e.g. ray://10.0.0.5:10001")
    return host.strip("[]"), int(port)


def probe(address: str) -> None:
    """Raise a one-line StudioError when nothing listens at ``address``."""
    host, port = _host_port(address)
    try:
        with socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise StudioError(f"cannot reach the Ray cluster at {address} ({reason})", fix=RAY_FIX) from None


def connect(address: str | None, workers: int) -> Cluster:
    """Start Ray here (``address`` None) or join ``address``; the trial function with one CPU per trial."""
    if workers < 1:
        raise StudioError("--workers must be at least 1")
    if address:
        probe(address)
    import ray

    from studio.offline import OFFLINE_ENV

    env = {key: os.environ.get(key, value) for key, value in OFFLINE_ENV.items()}
    try:
        if address:
            _join(ray, address, env)
        else:
            # "local": a new cluster of this search's own, never one that `ray start` left running here. Its
            # workers inherit this process's environment (the offline switches included).
            logging.getLogger("ray._private.authentication.authentication_token_setup").addFilter(_TOKEN_NOTICE)
            ray.init("local", num_cpus=workers, include_dashboard=False, log_to_driver=False, configure_logging=False,
                     object_store_memory=LOCAL_OBJECT_STORE_BYTES)
    except (ConnectionError, RuntimeError, TimeoutError) as exc:
        where = address or "this machine"
        raise StudioError(f"Ray did not start on {where}: {str(exc).splitlines()[0][:200]}", fix=RAY_FIX) from None
    from studio.search.trial import run_trial

    remote = ray.remote(num_cpus=1, max_retries=0)(run_trial)
    cluster = Cluster(address, workers, remote)
    if address:
        _check_versions(ray)
    return cluster


def _join(ray: Any, address: str, env: dict[str, str]) -> None:
    """Join a cluster. A Ray Client server starts one process per client and can miss its own start-up deadline on
    a busy head ("Initialization failure from server"): that is tried again twice before it is an error."""
    for attempt in range(JOIN_ATTEMPTS):
        try:
            ray.init(address, log_to_driver=False, runtime_env={"env_vars": env})
            return
        except ConnectionError as exc:
            if "Initialization failure" not in str(exc) or attempt == JOIN_ATTEMPTS - 1:
                raise
            ray.shutdown()


def _check_versions(ray: Any) -> None:
    import studio

    @ray.remote(num_cpus=0)
    def version() -> str:
        import studio as remote_studio

        return remote_studio.__version__

    theirs = ray.get(version.remote(), timeout=120)
    if theirs != studio.__version__:
        raise StudioError(f"the cluster runs Deploy Studio {theirs}, this is {studio.__version__}",
                          fix="install the same version on every node")


def shutdown() -> None:
    import ray

    if ray.is_initialized():
        ray.shutdown()
