"""Test-only faults, loaded by a worker started with this folder on PYTHONPATH; the worker's own
code is untouched. While the file named by EXFILGUARD_TEST_HOLD_FINDINGS exists, a send to the
findings topic does not complete (a cluster that takes no writes); while the file named by
EXFILGUARD_TEST_FAIL_FLAG exists, the detector raises on the event ids listed in
EXFILGUARD_TEST_FAIL_EVENT_IDS (a bug, mended by removing the file)."""

import asyncio
import os

_hold = os.environ.get("EXFILGUARD_TEST_HOLD_FINDINGS")
if _hold:
    import faust.topics

    _send = faust.topics.Topic.send

    async def _held_send(self, *args, **kwargs):
        while (os.path.exists(_hold)
               and self.get_topic_name() == os.environ.get("EXFILGUARD_TOPIC_FINDINGS")):
            await asyncio.sleep(0.2)
        return await _send(self, *args, **kwargs)

    faust.topics.Topic.send = _held_send

_fail = os.environ.get("EXFILGUARD_TEST_FAIL_FLAG")
if _fail:
    from streams.core import detector

    _observe = detector.Detector.observe
    _ids = set(os.environ.get("EXFILGUARD_TEST_FAIL_EVENT_IDS", "").split(","))

    def _failing_observe(self, event, *args, **kwargs):
        if os.path.exists(_fail) and event.event_id in _ids:
            raise RuntimeError(f"injected fault on {event.event_id}")
        return _observe(self, event, *args, **kwargs)

    detector.Detector.observe = _failing_observe
