"""The training core: the LightningModule, its schedules, precision and RNG rules, the guard."""
