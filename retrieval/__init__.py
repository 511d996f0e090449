"""Retrieval side of vidseek: the Milvus store, search with rescoring and CLIPRerank, metrics, eval."""
