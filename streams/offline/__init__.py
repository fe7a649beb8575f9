"""The core run over finite inputs (``detect``, ``replay``, ``backtest``), the backtest report,
and the sinks findings go to. May import core, config, sources, kafka, aws, geo, errors; not cli."""
