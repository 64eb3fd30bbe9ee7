"""Test support: tiny random models and tokenizers, and the backend conformance helpers."""
