"""Tests of the billing package (pure), and helpers shared by billing tests."""
