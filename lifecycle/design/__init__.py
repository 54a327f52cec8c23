"""The design stage: a model's card (intended use, schema, datasets, success criteria,
risks, resource budget), versioned and audited, and the gated transition out of design."""
