"""Small-scale experiments on the training dynamics of preference losses."""
