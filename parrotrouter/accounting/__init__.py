"""Usage accounting: the per-request record, prices applied, and the ledger it is written to."""
