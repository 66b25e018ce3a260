"""Weekly bug-statistics reports for every domain of an OWASP BLT platform."""

__version__ = "0.1.0"
