"""A queue shared by a study's one-thread workers: jobs in priority order, claimed by pid, skipped once
recorded, with workers waiting while the remaining jobs wait on choices other workers are still making."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from typing import Any

Job = tuple  # (task, arm, seed, ...): the first three name the job


def claim(study_dir: str, job: Job) -> bool:
    """Take a job for this worker (False if a live worker holds it). A claim names its worker's pid; a claim
    whose worker is gone is taken over."""
    task, arm, seed = job[:3]
    folder = os.path.join(study_dir, "claims")
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"{task}-{arm}-seed-{seed}")
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        try:
            with open(path, encoding="utf-8") as handle:
                holder = int(handle.read().strip() or 0)
            os.kill(holder, 0)
            return False
        except (ValueError, ProcessLookupError):
            os.remove(path)
            return claim(study_dir, job)
        except PermissionError:
            return False
    with os.fdopen(fd, "w") as handle:
        handle.write(str(os.getpid()))
    return True


def work(
    jobs: Callable[[], Iterable[Job | None]],
    is_recorded: Callable[[Job], bool],
    run: Callable[[Job], Any],
    study_dir: str,
    poll_seconds: float = 60.0,
    before_each: Callable[[], None] = lambda: None,
) -> None:
    """Take the first ready, unrecorded, unclaimed job of `jobs()` (None stands for jobs that wait on a choice
    not yet made) and run it; wait while only waiting or claimed jobs remain; stop when every job is recorded.
    `before_each` runs before each job taken (the studies check there that their code has not changed)."""
    while True:
        waiting = False
        for job in jobs():
            if job is None:
                waiting = True
                continue
            if is_recorded(job):
                continue
            if claim(study_dir, job):
                before_each()
                run(job)
                break
            waiting = True
        else:
            if not waiting:
                print("every job of the study is recorded", flush=True)
                return
            time.sleep(poll_seconds)
