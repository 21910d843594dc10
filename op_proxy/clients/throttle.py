"""Wrong client secrets, counted per client for every process sharing the database.

Anyone may send a client_id (it is public) with a wrong secret. Where checking a secret costs a
SHA-256 that only answers 429 instead of 401 after a few tries; where it would cost argon2 (a secret
people chose, not yet verified by this process) it is what keeps a core from being taken away, and
guessing from going faster than ``FAILURE_LIMIT`` tries a minute. The window is fixed: the
``FAILURE_LIMIT`` wrong secrets in the minute that began with the first of them, then ``429
slow_down`` with ``Retry-After`` (the seconds left) until that minute is over.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import case, delete, select, update
from sqlalchemy.exc import IntegrityError

from op_proxy.errors import SlowDown
from op_proxy.storage.models import ClientAuthFailures

FAILURE_LIMIT = 3
WINDOW = 60  # seconds


@dataclass(frozen=True)
class Failures:
    count: int
    retry_after: int  # seconds until the window ends

    @property
    def over_limit(self) -> bool:
        return self.count >= FAILURE_LIMIT


class TooManyFailures(SlowDown):
    def __init__(self, failures: Failures):
        super().__init__(f"too many failed client authentications; try again in {failures.retry_after} s",
                         headers={"Retry-After": str(failures.retry_after)})


def _failures(window_started_at: int, count: int, now: int) -> Failures:
    ends = window_started_at + WINDOW
    return Failures(count, ends - now) if ends > now else Failures(0, WINDOW)


async def failures_of(db, client_id: str) -> Failures:
    now = int(time.time())
    async with db.session() as session:
        row = (await session.execute(select(ClientAuthFailures.window_started_at, ClientAuthFailures.failures)
                                     .where(ClientAuthFailures.client_id == client_id))).first()
    return _failures(row.window_started_at, row.failures, now) if row else Failures(0, WINDOW)


async def count_failure(db, client_id: str) -> Failures:
    """One more wrong secret, counted atomically (two processes counting at once both count)."""
    now = int(time.time())
    current = ClientAuthFailures.window_started_at > now - WINDOW
    # failures before window_started_at: MariaDB assigns left to right, and the window test must
    # read the row's window as it was.
    count_up = (update(ClientAuthFailures).where(ClientAuthFailures.client_id == client_id)
                .values(failures=case((current, ClientAuthFailures.failures + 1), else_=1),
                        window_started_at=case((current, ClientAuthFailures.window_started_at), else_=now))
                .execution_options(synchronize_session=False))
    for _attempt in range(2):
        try:
            async with db.transaction() as session:
                if (await session.execute(count_up)).rowcount == 0:
                    session.add(ClientAuthFailures(client_id=client_id, window_started_at=now, failures=1))
                    await session.flush()
                row = (await session.execute(
                    select(ClientAuthFailures.window_started_at, ClientAuthFailures.failures)
                    .where(ClientAuthFailures.client_id == client_id))).one()
            return _failures(row.window_started_at, row.failures, now)
        except IntegrityError:
            continue  # another process made the row first: count on it
    return Failures(FAILURE_LIMIT, WINDOW)


async def forget_failures(db, client_id: str) -> None:
    async with db.transaction() as session:
        await session.execute(delete(ClientAuthFailures).where(ClientAuthFailures.client_id == client_id))
