"""Downstream consumers of the findings topic (issue 15): Security Hub, EventBridge, OCSF, webhook,
the responder; and the ASFF and OCSF shapes ``--format`` prints.

One loop, ``consumer.py``, reads the findings topic (or a JSON Lines file) and hands batches to a
``Notifier``; notify may import core, config, sources, kafka, aws, offline and errors, never
cli or app (tools/check_layers.py). boto3 clients are built at the edge (cli) and handed in.

The interface every notifier implements (``consumer.Notifier``)::

    name: str                                  # default consumer group: exfilguard-notify-<name>
    deliver(findings: list[dict]) -> None      # each finding once per batch, its latest version
    close() -> str                             # flush; say what was delivered (closing note)

``deliver`` returns only when every finding was delivered or dead-lettered (``DeadLetters`` is
handed to the notifier by its builder); raising ``DeliveryFailed`` stops the loop before the commit,
so the batch is read again on restart (at-least-once). Deliveries are keyed by finding id, so a
redelivered finding updates its copy downstream instead of adding a second one.
"""
