"""Training job programs (run by the job runner on a worker)."""
