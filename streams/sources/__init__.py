"""Input sources: CloudTrail files on disk (S3 delivery documents, JSON arrays, JSON Lines,
EventBridge events, gzip or not) as items for ``detect``, ``replay`` and the forwarder. S3 is in
``streams.aws``. May import core and errors only."""
