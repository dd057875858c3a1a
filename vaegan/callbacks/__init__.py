"""Lightning callbacks: checkpoints on the generator-step clock, image grids, diagnostics."""
