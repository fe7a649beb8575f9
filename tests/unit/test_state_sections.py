"""The core's tables as sections of one table (streams/app/state.py), the tables of an earlier
version read through, and the local tables of a worker that did not stop cleanly removed."""

from __future__ import annotations

from streams.app.state import DELETED, RUNNING_MARKER, Section, mark_stopped, wipe_if_unclean


def test_sections_share_one_table_under_their_names():
    table: dict = {}
    calls, clock = Section(table, "pending_calls"), Section(table, "partition_clock")
    calls["i-1"] = [[1, 2]]
    clock["watermark"] = 0
    assert table == {"pending_calls/i-1": [[1, 2]], "partition_clock/watermark": 0}
    assert calls.get("watermark") is None and clock["watermark"] == 0  # falsy, still there
    assert list(calls) == ["i-1"] and len(clock) == 1 and "i-1" in calls
    del calls["i-1"]
    assert table == {"partition_clock/watermark": 0}
    try:
        del calls["i-1"]
    except KeyError:
        pass
    else:
        raise AssertionError("deleting a missing key must raise KeyError")


def test_a_legacy_table_is_read_where_the_section_has_no_key_and_never_written():
    legacy = {"ASIAOLD": {"instance": "i-old"}, "ASIAGONE": {"instance": "i-gone"}}
    before = dict(legacy)
    table: dict = {}
    credentials = Section(table, "instance_credentials", legacy)
    assert credentials["ASIAOLD"] == {"instance": "i-old"}
    credentials["ASIAOLD"] = {"instance": "i-new"}  # written here, shadowing the old value
    assert credentials["ASIAOLD"] == {"instance": "i-new"}
    del credentials["ASIAGONE"]  # the legacy key is shadowed, not deleted there
    assert "ASIAGONE" not in credentials and credentials.get("ASIAGONE", 7) == 7
    assert table["instance_credentials/ASIAGONE"] == DELETED
    assert sorted(credentials) == ["ASIAOLD"]
    credentials["ASIAGONE"] = {"instance": "i-back"}
    assert sorted(credentials) == ["ASIAGONE", "ASIAOLD"]
    del credentials["ASIAOLD"]
    assert sorted(credentials) == ["ASIAGONE"] and len(credentials) == 1
    assert legacy == before


def test_local_tables_are_removed_only_after_a_worker_that_did_not_stop_cleanly(tmp_path):
    datadir, tables = tmp_path / "worker", tmp_path / "worker" / "v1" / "tables"
    tables.mkdir(parents=True)
    (tables / "detector_state-0.db").write_text("kept")
    assert not wipe_if_unclean(str(datadir), str(tables))  # first start: nothing to remove
    assert (datadir / RUNNING_MARKER).exists()
    mark_stopped(str(datadir))  # a clean stop keeps them
    assert not wipe_if_unclean(str(datadir), str(tables))
    assert (tables / "detector_state-0.db").read_text() == "kept"
    # Killed: the marker stays, and the next start removes the tables.
    assert wipe_if_unclean(str(datadir), str(tables))
    assert not tables.exists() and (datadir / RUNNING_MARKER).exists()
    mark_stopped(str(datadir))
    mark_stopped(str(datadir))  # twice: no error
    assert not (datadir / RUNNING_MARKER).exists()
