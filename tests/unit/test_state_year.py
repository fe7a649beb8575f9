"""The state over weeks of an organisation's traffic (bench/state.py's year, small): every table
stays flat after warm-up while keys rotate hourly, instances come and go (some with no end in
the trail), keys are stolen and accounts allocate and release elastic IPs and NAT gateways."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from bench.state import YearShape, year  # noqa: E402


def test_every_table_is_flat_after_warm_up():
    shape = YearShape(days=24, instances=6, mean_lifetime_days=2.0, thefts_per_week=7,
                      calls_per_theft=40, redelivered_per_theft=5)
    result = year(shape)
    assert result["offending_calls_counted"] > 0  # thefts were found
    for table, figures in result["tables"].items():
        quarters = figures["entries_by_quarter_max"]
        # Traffic is the same all along: a table that kept what it no longer needs would hold
        # in its last quarter about four times what it held in its first.
        assert quarters[3] <= 1.5 * max(quarters[0], 10), (table, quarters)
    # Addresses allocated and released all along, instances vanishing: these tables hold what
    # is live (allocated, running), so their last quarter is their first, give or take a few.
    assert result["network_changes"] > 24 * 6  # several a day and account
    for table in ("address_to_account", "instance_to_addresses", "instance_credentials"):
        quarters = result["tables"][table]["entries_by_quarter_max"]
        assert quarters[0] > 0 and quarters[3] <= 1.15 * quarters[0] + 4, (table, quarters)
    seen = result["tables"]["offending_event_ids"]["entries_after_warmup"]
    assert seen["max"] < 3 * 40 * 2  # a day and a half of thefts at most, never all of them
    assert result["tables"]["partition_clock"]["entries_after_warmup"]["max"] < 40
