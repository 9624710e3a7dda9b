"""Rendering results for people: terminal tables and the Markdown report."""
