"""What every quoteflow service shares: start-up, health, reflection, signals,
configuration, logging and error mapping."""
