"""Phase 7 as a pytest plugin: the claim API (`claims`), the hooks registered through the pytest11
entry point (`hooks`), the statistics files and figures (`report`) and MLflow logging (`tracking`)."""
