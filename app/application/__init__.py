"""The application layer: ports and the use cases that every inbound adapter calls."""
