"""Webhooks (SPEC §8): every branch event POSTed to integrators, signed per Standard Webhooks."""
