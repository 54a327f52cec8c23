"""Every write of the lifecycle app, one module per concern."""
