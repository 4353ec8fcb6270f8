"""The model registry: versions, stages through signed approvals, aliases, signed releases,
and the audit trail they leave (see ``store``)."""
