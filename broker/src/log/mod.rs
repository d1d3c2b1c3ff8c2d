//! Durable partitioned log storage (filled in by the storage work).
