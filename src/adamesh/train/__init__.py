"""Training: one loop (`loop`) for every model of the method, the tasks it trains (`tasks`) and
their presets (`presets`)."""
