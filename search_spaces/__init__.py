"""Declarative sweep definitions, shipped with the package so `ray submit` finds them by name."""
