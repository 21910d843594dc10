"""Relying parties: registration data, validation and authentication at the token endpoint."""
