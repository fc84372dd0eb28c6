"""Pictures of sampled training data (projections, eligible regions, patch boxes)."""
