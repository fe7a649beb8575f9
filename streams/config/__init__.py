"""The one ``Config`` a run is given, loaded at the edge from the YAML file and ``EXFILGUARD_*``:
detection settings (``streams.core.settings``) and Kafka settings (``streams.kafka.settings``)."""
