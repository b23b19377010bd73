"""Performance model: architecture data and the timing pass over instruction streams."""
