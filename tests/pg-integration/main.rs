//! Integration tests against a real PostgreSQL and a real S3-compatible server.
