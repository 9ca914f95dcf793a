"""Training: strategies, schedules, the trainer loop."""
