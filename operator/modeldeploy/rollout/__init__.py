"""Progressive delivery: what a rollout does next, and the evidence it is judged on (pure)."""
