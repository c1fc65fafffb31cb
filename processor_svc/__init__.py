"""The processor service: per-order event queues, fed by proposals that are
priced through the quote service."""
