"""complaint-processor: turns complaint mail in monitored IMAP folders into cases with a history."""

__version__ = "0.1.0"
