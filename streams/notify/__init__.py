"""Downstream consumers of the findings topic (issue 15): each a notifier handed findings, from
the topic at least once or from a JSON Lines file."""
