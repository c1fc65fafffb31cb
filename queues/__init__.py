"""Plain-asyncio queues behind the quoteflow services: no gRPC, no generated code."""
