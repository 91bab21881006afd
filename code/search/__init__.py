"""Evidence retrieval: Serper web search, a local BM25 corpus, and the evidence cleaning rules."""
