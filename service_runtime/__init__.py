"""Start-up, health, reflection, signals, config, logging and error mapping shared by every quoteflow service."""
