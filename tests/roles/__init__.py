"""Role metadata: variables generated from each spec, collections declared in requirements.yml."""
