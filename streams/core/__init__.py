"""The pure detection core: records in, findings out, state passed in.

Nothing here imports Faust, Kafka clients or boto3 (``tools/check_core_purity.py`` enforces it), and
nothing reads the wall clock: event time decides every verdict, so a replay gives byte-identical
findings. The stream job, ``exfilguard detect``, replay and backtest all drive ``Detector``.
"""
