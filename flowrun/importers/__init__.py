"""Importers: flows from other tools converted into flowrun flows."""
