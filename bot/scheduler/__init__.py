"""The scheduler: deadline nudges, automatic resends, expiry, plan renewal, low-balance alerts."""
