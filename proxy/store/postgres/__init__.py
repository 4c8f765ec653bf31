"""The PostgreSQL store (asyncpg): one database shared by several Tenang instances.

``backend.postgres_backend`` fills every role: besides the queue, the instances share
each upstream's breaker, send rate and send slots (``rate.max_concurrency``), the
backpressure count, notifications, bulk jobs, maintenance windows and the hash chain
(``[store] url = "postgresql://..."``)."""
