"""Retrieval: text search with query-weighted rescoring, CLIPRerank fusion, metrics and eval, over the store."""
