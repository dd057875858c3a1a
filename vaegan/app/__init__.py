"""The application around a run: config validation, run dir, checkpoint I/O, errors, sweeps."""
