"""Training: the accelerate trainer, datasets (user folders, procedural world), recipes, eval."""
