"""All Ray wiring of vidseek: the index job, stage resources, the store writer, the CLI."""
