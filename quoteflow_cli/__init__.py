"""quoteflow: a command line for the quoteflow services, for people and for scripts."""
