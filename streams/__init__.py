"""exfilguard: real-time detection of stolen EC2 instance credentials from CloudTrail.

Parts: ``core`` (pure detection), ``config``, ``sources``, ``kafka``, ``aws``, ``geo``, ``offline``,
``app`` (Faust wiring) and ``cli`` (one module per command); README's Layout draws them.
"""

__version__ = "0.1.0"
