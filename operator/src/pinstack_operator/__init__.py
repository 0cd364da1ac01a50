"""Pinstack operator: reconciles PinstackEnvironment resources (Kopf)."""

__version__ = "0.1.0"
