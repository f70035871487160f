"""croniter that counts the slots it steps through, for tests that bound how much a
plan may count on the event loop (patch it over `projections.schedule.croniter`)."""

from __future__ import annotations

from croniter import croniter


class CountingCroniter(croniter):  # type: ignore[misc]
    """Counts every step, both directions, in the class attribute `steps` (tests read
    differences or reset it)."""

    steps = 0

    def get_next(self, *args: object, **kwargs: object) -> object:
        CountingCroniter.steps += 1
        return super().get_next(*args, **kwargs)

    def get_prev(self, *args: object, **kwargs: object) -> object:
        CountingCroniter.steps += 1
        return super().get_prev(*args, **kwargs)
