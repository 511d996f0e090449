"""The Ray jobs: indexing (stages, resources, the store writer, resume planning) and head training."""
