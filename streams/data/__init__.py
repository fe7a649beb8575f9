"""Data shipped in the package: the AWS ip-ranges snapshot with its licence and provenance."""
