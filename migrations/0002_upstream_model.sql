-- Routes across providers (issue 20): the answering target's own model name, beside
-- `provider` (its PROVIDERS name). Records written before routes have none.
ALTER TABLE ledger ADD COLUMN upstream_model TEXT;
