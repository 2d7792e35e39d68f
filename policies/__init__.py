"""kinema.policies: the brain (vision-language planner) and the DiT action-chunking policy."""
