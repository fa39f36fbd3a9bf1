"""Pure predictive-maintenance models: no IO, no streaming framework."""
