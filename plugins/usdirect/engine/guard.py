"""Refuse to do damage: stop a full-feed run before anything is written when the feed looks broken.

An empty feed, or one with far fewer SKUs than the last feed that was fully delivered, is much more
often a broken export than a real catalog cut; loading it would archive (and zero on the platform)
products that are still for sale. A person who knows the cut is real re-runs with ``allow_shrink``.
"""

from __future__ import annotations

from usdirect.domain.errors import PermanentError


class FeedShrinkError(PermanentError, RuntimeError):
    """The feed is empty or shrank past the threshold; nothing was loaded, archived or published."""


OVERRIDE = (
    'If the catalog really changed, trigger the DAG again with the Param {"allow_shrink": true} '
    "(Trigger DAG w/ config in the UI, or `airflow dags trigger <dag_id> --conf '{\"allow_shrink\": true}'`)."
)


def check_feed_size(
    skus: int, last_good: int | None, max_shrink_share: float, allow_shrink: bool
) -> str | None:
    """Raise ``FeedShrinkError`` for an empty or shrunken feed; returns a note when overridden."""
    if skus == 0:
        reference = f"the last good feed had {last_good:,}" if last_good else "there is no earlier good feed"
        problem = f"The inventory feed is empty: 0 SKUs ({reference})."
    elif last_good and skus < last_good * (1 - max_shrink_share):
        drop = 1 - skus / last_good
        problem = (
            f"The inventory feed has {skus:,} SKUs, {drop:.1%} fewer than the {last_good:,} of the last good "
            f"feed (the limit is {max_shrink_share:.0%}, operations.get_inventory.max_shrink_share)."
        )
    else:
        return None
    if allow_shrink:
        return f"{problem} Accepted because allow_shrink is set: missing SKUs will be archived."
    raise FeedShrinkError(f"{problem} Nothing was loaded, archived or published. {OVERRIDE}")
