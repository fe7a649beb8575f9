"""The pure detection core: records in, findings out, state passed in. It imports nothing but
itself (``tools/check_layers.py``) and never reads the wall clock: event time decides every
verdict, so the stream, ``detect``, replay and backtest, all driving ``Detector``, agree."""
