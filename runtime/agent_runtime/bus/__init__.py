"""The message bus: one contract (:mod:`.base`), adapters for SQLite, Service Bus, Storage Queues and SQS."""
