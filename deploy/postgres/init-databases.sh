#!/bin/sh
# Runs once, when the postgres container initialises an empty data directory
# (mounted into /docker-entrypoint-initdb.d/). One PostgreSQL instance hosts two
# databases, each owned by its own login role:
#   modelgate  - ModelGate's lifecycle database (DATABASE_URL)
#   mlflow     - the MLflow tracking server's backend store
# Passwords come from the container environment; nothing is hard-coded here.
# Changing them later means ALTER ROLE ... PASSWORD: this script never runs again.
set -e

: "${MODELGATE_DB_PASSWORD:?MODELGATE_DB_PASSWORD must be set}"
: "${MLFLOW_DB_PASSWORD:?MLFLOW_DB_PASSWORD must be set}"

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "${POSTGRES_DB:-$POSTGRES_USER}" \
    -v modelgate_password="$MODELGATE_DB_PASSWORD" \
    -v mlflow_password="$MLFLOW_DB_PASSWORD" <<'SQL'
CREATE ROLE modelgate LOGIN PASSWORD :'modelgate_password';
CREATE DATABASE modelgate OWNER modelgate;
REVOKE ALL ON DATABASE modelgate FROM PUBLIC;

CREATE ROLE mlflow LOGIN PASSWORD :'mlflow_password';
CREATE DATABASE mlflow OWNER mlflow;
REVOKE ALL ON DATABASE mlflow FROM PUBLIC;
SQL
