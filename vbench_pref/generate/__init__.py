"""Generation: diffusers video pipelines, checkpoint and adapter loading, built-in tiny models, prompt suites."""
