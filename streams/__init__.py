"""exfilguard: real-time detection of stolen EC2 instance credentials from CloudTrail.

``streams.core`` is the pure detection core; ``streams.app`` wires it into Faust, ``streams.aws``
adapts boto3, and ``streams.cli`` holds one module per command.
"""

__version__ = "0.1.0"
