"""Storage adapters: the only package that imports ``redis`` and ``asyncpg``."""
