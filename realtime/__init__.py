"""Live channels, the event log and fan-out to connected clients."""
