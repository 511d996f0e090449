"""pipeline/copies_job.py without starting Ray: which stores run copies on Ray, and what a failed Ray start
says (copies only read the store: a re-run starts over, it does not continue)."""

from __future__ import annotations

import pytest

from vidseek.pipeline.copies_job import RAY_MIN_VIDEOS, runs_on_ray, start_ray
from vidseek.pipeline.job_ray import JobError


def test_ray_is_chosen_for_large_server_stores_or_when_asked():
    assert not runs_on_ray("http://h:19530", None, RAY_MIN_VIDEOS - 1)
    assert runs_on_ray("http://h:19530", None, RAY_MIN_VIDEOS)
    assert not runs_on_ray("./lib.db", None, 10 * RAY_MIN_VIDEOS)  # Lite: one process only
    assert runs_on_ray("./lib.db", True, 1) and not runs_on_ray("http://h:19530", False, 10 * RAY_MIN_VIDEOS)


class FailingRay:
    """A JobRay whose start fails as job_ray's does: the index job's wording, the cause chained."""

    def start(self) -> None:
        try:
            raise ConnectionError("no GCS at h:6379")
        except ConnectionError as e:
            raise JobError(
                "could not join ...: retry: re-running the same command continues where this one stopped"
            ) from e


@pytest.mark.parametrize(
    "address, where", [("ray://h:10001", "join the Ray cluster at ray://h:10001"), (None, "start a local Ray instance")]
)
def test_a_failed_ray_start_says_a_rerun_starts_over(address, where):
    with pytest.raises(JobError) as e:
        start_ray(FailingRay(), address)
    msg = str(e.value)
    assert f"copies could not {where} (no GCS at h:6379)" in msg
    assert "continues where" not in msg and "a re-run searches the whole library again" in msg
