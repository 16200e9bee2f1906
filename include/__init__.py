"""DAG-side helpers: settings, the DockerOperator factory, drop claiming. Light imports only."""
