"""Training: one loop (`loop`) for every model of the method, and the tasks it trains (`tasks`)."""
