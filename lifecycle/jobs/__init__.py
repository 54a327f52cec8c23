"""Jobs on GPU hosts: specs, worker inventory, the runner, and their services."""
