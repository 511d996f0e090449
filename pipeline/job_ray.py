"""Ray for one index job: join the cluster at ``address``, or start a local instance and stop it at the end.

A local start is retried: on these 2-core machines about one start in a hundred was seen to stall (the GCS
port file or the raylet never appeared) and the next start to succeed. A retry that succeeds is logged at
INFO, with what the stalled start left behind (docs/architecture.md "Starting Ray"), and the job goes on; three
failed starts stop the job with one line.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Iterator

from vidseek.pipeline.index_config import IndexConfig
from vidseek.pipeline.quiet_ray import quiet_dashboard_failure, quiet_token_auth_notice

log = logging.getLogger(__name__)
START_TRIES = 3


class JobError(RuntimeError):
    """The job could not run (not a per-video failure); the message says what to do."""


def ray_temp_dir() -> str:
    """This job's local Ray temp dir (VIDSEEK_RAY_TMP overrides)."""
    return os.environ.get("VIDSEEK_RAY_TMP", f"/tmp/vidseek-ray-{os.getuid()}-{os.getpid()}")


@contextlib.contextmanager
def timed(phases: dict[str, float], name: str) -> Iterator[None]:
    t = time.perf_counter()
    try:
        yield
    finally:
        phases[name] = time.perf_counter() - t


def _proc(pid: int | str) -> tuple[int, str, str, bytes]:
    """(parent pid, state, exe, cmdline) of a process, from /proc (Linux: where a local Ray runs here)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    state, ppid = stat[stat.rindex(")") + 2 :].split()[:2]  # the name, in parentheses, may hold spaces
    return int(ppid), state, os.readlink(f"/proc/{pid}/exe"), Path(f"/proc/{pid}/cmdline").read_bytes()


def stalled_start_report(tmp: str) -> str:
    """What a local start that timed out left: this process's children, and which daemons wrote a log.

    A child that is still a copy of this process was forked to start a daemon and never reached exec (Ray
    starts its daemons through a Python ``preexec_fn``); a daemon with no log never started."""
    me = _proc("self")
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError):  # a process may exit while it is read
            ppid, state, exe, cmdline = _proc(entry.name)
            if ppid != os.getpid():
                continue
            forked_only = (exe, cmdline) == me[2:]
            name = "a fork of this process that never exec'd" if forked_only else Path(exe).name
            children.append(f"{entry.name} {name} ({state})")
    logs = sorted(p.stem for p in Path(tmp).glob("session_latest/logs/*.out"))
    return f"children: {', '.join(children) or 'none'}; daemon logs: {', '.join(logs) or 'none'}"


def start_local_ray(cfg: IndexConfig) -> None:
    # One temp dir per job: two local Ray instances sharing one (two jobs at once, or a job starting while
    # the last one's processes still exit) step on each other's session files and time out at start-up.
    init_local_ray(ray_temp_dir(), num_cpus=cfg.num_cpus or os.cpu_count(), num_gpus=cfg.num_gpus)


def init_local_ray(temp_dir: str, num_cpus: int | None, num_gpus: int | None = None) -> None:
    """``ray.init`` of a local instance in ``temp_dir``, started again when a start stalls (up to
    ``START_TRIES``); the tests' own local Ray starts through here too."""
    import ray

    quiet_token_auth_notice()
    quiet_dashboard_failure()
    for attempt in range(1, START_TRIES + 1):
        try:
            ray.init(
                num_cpus=num_cpus,
                num_gpus=num_gpus,
                include_dashboard=False,
                _temp_dir=temp_dir,
                _node_ip_address="127.0.0.1",
                log_to_driver=False,
                configure_logging=False,
            )
            return
        except Exception as e:  # noqa: BLE001 — ray.init raises bare Exception on start-up timeouts
            report = stalled_start_report(temp_dir)
            ray.shutdown()  # stops what the stalled start left, the stuck fork included (Ray holds its Popen)
            if attempt == START_TRIES:
                raise JobError(
                    f"could not start a local Ray instance ({START_TRIES} tries): {e} [{report}]. Check free "
                    "memory/CPU, or retry: re-running the same command continues where this one stopped"
                ) from e
            log.info(
                "local Ray did not start (%s) [%s]; starting it again (%d/%d)", e, report, attempt + 1, START_TRIES
            )
            time.sleep(2)


def join_cluster(address: str) -> None:
    import ray

    try:
        ray.init(address=address, log_to_driver=False)
    except Exception as e:  # noqa: BLE001 — ray.init raises bare Exception
        raise JobError(
            f"could not join the Ray cluster at {address}: {e}. Check `ray status` there, "
            "or retry: re-running the same command continues where this one stopped"
        ) from e


class JobRay:
    """Started before the stages; stopped at the job's end when this job started it."""

    def __init__(self, cfg: IndexConfig, phases: dict[str, float]):
        self.cfg, self.phases = cfg, phases
        self.up = self.owned = False

    def start(self) -> None:
        if self.up:
            return
        import ray

        with timed(self.phases, "ray_start"):
            self.owned = not ray.is_initialized()  # a caller's Ray (tests, the service) stays the caller's
            if self.owned and self.cfg.address:
                join_cluster(self.cfg.address)
            elif self.owned:
                start_local_ray(self.cfg)
        self.up = True

    def stop(self) -> None:
        if self.owned:
            import ray

            with timed(self.phases, "ray_stop"):
                ray.shutdown()
                if not self.cfg.address and "VIDSEEK_RAY_TMP" not in os.environ:
                    shutil.rmtree(ray_temp_dir(), ignore_errors=True)
        self.up = self.owned = False
