"""Offline checks of Marie's rendered deployment files (used by scripts/validate-manifests)."""
