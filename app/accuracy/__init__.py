"""The wait estimate's accuracy, measured live (SPEC §11): the quote a ticket got at issue and
the wait it had until its first call, kept side by side (docs/accuracy.md)."""
