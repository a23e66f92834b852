"""Real servers, on loopback, for the edges we do not own (card gateway, later webhook receivers)."""
