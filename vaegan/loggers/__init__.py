"""Logger construction (CSV always; TensorBoard and wandb on request)."""
