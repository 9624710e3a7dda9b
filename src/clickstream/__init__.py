"""clickstream: raw ecommerce clickstream CSV to a checked star schema and business answers, on DuckDB or Spark."""

__version__ = "0.1.0"
