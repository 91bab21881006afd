"""LLM backends behind one small interface (see base.py); only this package talks to providers."""
