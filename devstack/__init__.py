"""Local stand-ins for what jobwire talks to: Kafka, PostgreSQL, a mail catcher, a webhook sink."""
