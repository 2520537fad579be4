"""Custom checkov checks, loaded by checkov with ``--external-checks-dir`` (it needs this file to load any)."""
