"""HTML for people: the findings timeline the backtest report and the worker's live view draw.
May import core only; pure functions of their inputs, every value escaped."""
