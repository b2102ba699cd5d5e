"""Where per-item work runs: this machine's process pool (`local`) or a Ray cluster (`ray`).

`build-db` and `analysis extract` cut their work into independent units (one clip with all
its augmentations; one block of items) whose results depend only on the unit and the seed.
That is what makes the executor a free choice: the parent collects results in whatever
order they finish and writes them into fixed shards, so `local` and `ray` produce
bit-identical files and either one can resume a build the other started.

With Ray each worker is an actor that builds its expensive state once (encoder, chains,
renderers) and then serves units, so a GPU encoder is loaded once per worker, not once per
unit. Actors are restarted and their unit retried when a worker process dies; a killed
driver loses only the units in flight, which the shard logic redoes on the next run.

`ray.init(address=...)` connects to an existing cluster (config `executor.address`, or the
RAY_ADDRESS environment variable); without an address a private local Ray is started with as
many CPUs as workers, and shut down when the work is done.

ray is imported inside functions: it is an optional scale-out path and costs seconds.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Iterator, Literal, Sequence

from pydantic import BaseModel, ConfigDict, Field

from .errors import DeltaV2AError

class ExecutorConfig(BaseModel):
    """`executor:` section, shared by the project config and the analysis config.

    Not part of any database or extract identity: how the work was spread changes nothing in
    the records.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    kind: Literal["local", "ray"] = Field("local", description="local process pool, or a Ray cluster")
    address: str | None = Field(None, description="Ray cluster address (ray://host:10001, auto); "
                                                  "default: $RAY_ADDRESS, else a private local Ray")
    gpus_per_worker: float = Field(0.0, ge=0, description="GPUs each Ray worker reserves (GPU encoders)")
    max_restarts: int = Field(3, ge=0, description="Ray: restarts of a worker whose process died")


def ray_address(cfg: ExecutorConfig) -> str | None:
    return cfg.address or os.environ.get("RAY_ADDRESS") or None


class _Actor:
    """Holds one worker object built by `factory(*args)`; `call(method, item)` runs a unit."""

    def __init__(self, factory: Callable[..., Any], args: tuple, env: dict[str, str]) -> None:
        import signal

        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C belongs to the driver
        for key in [k for k in os.environ if k.startswith("DELTAV2A_") and k not in env]:
            del os.environ[key]
        os.environ.update(env)
        self.worker = factory(*args)

    def pid(self) -> int:
        return os.getpid()

    def call(self, method: str, item: Any) -> Any:
        return getattr(self.worker, method)(item)


class RaySession:
    """A connection to Ray for the length of one job (context manager).

    Reuses a Ray the caller already initialised (tests, notebooks), connects to an address
    when one is configured, and otherwise starts a private local instance that it also
    shuts down.
    """

    def __init__(self, cfg: ExecutorConfig, n_workers: int) -> None:
        self.cfg = cfg
        self.n_workers = n_workers
        self.owned = False

    def __enter__(self) -> "RaySession":
        try:
            import ray
        except ImportError:
            raise DeltaV2AError("executor 'ray' needs the ray package (pip install 'ray==2.60.0')") from None
        if not ray.is_initialized():
            address = ray_address(self.cfg)
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                      "configure_logging": False}
            if address is None:
                kwargs["num_cpus"] = self.n_workers
                kwargs["num_gpus"] = 0 if not self.cfg.gpus_per_worker else None
            try:
                ray.init(address=address, **{k: v for k, v in kwargs.items() if v is not None})
            except Exception as exc:  # ConnectionError, RuntimeError, ...: one line
                raise DeltaV2AError(f"could not start or reach Ray"
                                    f"{' at ' + address if address else ''}: {exc}") from None
            self.owned = True
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.owned:
            import ray

            ray.shutdown()


def ray_map(factory: Callable[..., Any], args: tuple, method: str, items: Sequence[Any],
            n_workers: int, cfg: ExecutorConfig) -> Iterator[Any]:
    """`getattr(factory(*args), method)(item)` for every item on `n_workers` Ray actors
    (0: one per CPU of the cluster).

    Yields results in completion order. Each actor builds its worker once. A unit whose
    worker process dies is retried on the restarted actor (up to `cfg.max_restarts`);
    units are pure functions of their input, so a retry gives the same result.
    """
    import ray

    env = {k: v for k, v in os.environ.items() if k.startswith("DELTAV2A_")}
    with RaySession(cfg, max(1, n_workers)):
        if n_workers <= 0:  # as many as the cluster has CPUs
            n_workers = max(1, int(ray.cluster_resources().get("CPU", 1)))
        remote_cls = ray.remote(num_cpus=1, num_gpus=cfg.gpus_per_worker or 0,
                                max_restarts=cfg.max_restarts,
                                max_task_retries=cfg.max_restarts)(_Actor)
        actors = [remote_cls.remote(factory, args, env) for _ in range(max(1, min(n_workers, len(items))))]
        pending: dict[Any, int] = {}
        queue = list(range(len(items)))
        free = list(actors)
        try:
            while queue or pending:
                while queue and free:
                    actor = free.pop()
                    i = queue.pop(0)
                    pending[actor.call.remote(method, items[i])] = actors.index(actor)
                done, _ = ray.wait(list(pending), num_returns=1)
                ref = done[0]
                a = pending.pop(ref)
                free.append(actors[a])
                try:
                    result = ray.get(ref)
                except ray.exceptions.RayError as exc:
                    raise RuntimeError(f"a Ray worker failed ({type(exc).__name__}: "
                                       f"{str(exc).splitlines()[0] if str(exc) else ''}); finished "
                                       "shards are kept, rerun the same command to resume") from None
                yield result
        finally:
            for ref in pending:
                ray.cancel(ref, force=True)
            for actor in actors:
                ray.kill(actor)


__all__ = ["ExecutorConfig", "RaySession", "ray_address", "ray_map"]
