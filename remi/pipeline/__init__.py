"""How the library runs as a pipeline: params, output layout, MLflow tracking, stage entry, release."""
