#!/bin/bash
# Runs once, after the InfluxDB image's setup: maps the InfluxQL database/retention policy
# pmaint's dashboards query onto the bucket the workers write (DBRP), so InfluxQL works.
set -euo pipefail
influx v1 dbrp create \
  --org "${DOCKER_INFLUXDB_INIT_ORG}" \
  --bucket-id "${DOCKER_INFLUXDB_INIT_BUCKET_ID}" \
  --db "${INFLUXDB_V1_DATABASE:-pmaint}" \
  --rp "${INFLUXDB_V1_RETENTION_POLICY:-autogen}" \
  --default
