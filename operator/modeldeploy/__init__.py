"""modeldeploy: ship ML models on Kubernetes, with health and drift on the resource."""
