"""Exponential backoff with jitter (the cenkalti/backoff defaults COSI uses).

Each ``next()`` returns the current interval randomized by +-``jitter`` (clamped to
``maximum``) and then grows the interval by ``multiplier`` up to ``maximum``; ``reset()``
returns to ``initial``.
"""

from __future__ import annotations

import random


class Backoff:
    """Delays of 500 ms, x1.5, +-50 %, at most 60 s by default."""

    __slots__ = ("initial", "multiplier", "jitter", "maximum", "_current", "_rng")

    def __init__(
        self,
        initial: float = 0.5,
        *,
        multiplier: float = 1.5,
        jitter: float = 0.5,
        maximum: float = 60.0,
        rng: random.Random | None = None,
    ) -> None:
        if initial <= 0:
            raise ValueError(f"backoff initial interval must be positive, got {initial}")
        if multiplier < 1:
            raise ValueError(f"backoff multiplier must be >= 1, got {multiplier}")
        if not 0 <= jitter < 1:
            raise ValueError(f"backoff jitter must be in [0, 1), got {jitter}")
        if maximum < initial:
            raise ValueError(f"backoff maximum {maximum} must be >= initial interval {initial}")
        self.initial = initial
        self.multiplier = multiplier
        self.jitter = jitter
        self.maximum = maximum
        self._current = initial
        self._rng = rng or random.Random()

    @property
    def current(self) -> float:
        """The interval (before jitter) the next delay is drawn around."""
        return self._current

    def next(self) -> float:
        cur = self._current
        delta = self.jitter * cur
        delay = min(cur - delta + self._rng.random() * 2 * delta, self.maximum)
        self._current = min(cur * self.multiplier, self.maximum)
        return delay

    def reset(self) -> None:
        self._current = self.initial
