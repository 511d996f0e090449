"""The store layer: Milvus (Lite or server), its rows, model stamp and filter expressions (docs/architecture.md)."""
