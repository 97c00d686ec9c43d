"""Daily reports per business type, counter and clerk, computed from the branch history."""
