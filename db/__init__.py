"""Database access: engines, table definitions and the schema contract of both shared databases."""
