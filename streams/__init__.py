"""exfilguard: real-time detection of stolen EC2 instance credentials from CloudTrail. Parts:
``core``, ``config``, ``sources``, ``kafka``, ``aws``, ``geo``, ``offline``, ``app`` and ``cli``
(docs/architecture.md draws them in its Layout and walks one record through)."""

__version__ = "0.1.0"
