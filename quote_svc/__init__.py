"""The quote service: a priority message queue that prices insurance-quote submissions."""
