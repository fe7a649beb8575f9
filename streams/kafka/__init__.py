"""Kafka edges (confluent-kafka): settings, admin, the batch wire format, routing, the forwarder,
the topic-range reader and the findings codec and sink. May import core, sources and errors;
never app or cli."""
