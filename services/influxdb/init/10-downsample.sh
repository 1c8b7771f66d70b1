#!/bin/bash
# Run once by the influxdb image after its first setup, with the influx CLI
# already configured with the operator token. Creates the downsampled
# bucket and the task that writes hourly means of the raw bucket into it.
set -euo pipefail

raw="${DOCKER_INFLUXDB_INIT_BUCKET}"
target="${LABDOCK_DOWNSAMPLED_BUCKET}"

influx bucket create \
    --org "${DOCKER_INFLUXDB_INIT_ORG}" \
    --name "${target}" \
    --retention "${LABDOCK_DOWNSAMPLED_RETENTION}" \
    --description "hourly means of ${raw}, written by the downsample task"

task_file="$(mktemp)"
cat >"${task_file}" <<FLUX
import "types"

option task = {name: "downsample-${raw}-1h", every: 1h, offset: 5m}

from(bucket: "${raw}")
    |> range(start: -task.every)
    |> filter(fn: (r) => types.isNumeric(v: r._value))
    |> aggregateWindow(every: 1h, fn: mean, createEmpty: false)
    |> to(bucket: "${target}", org: "${DOCKER_INFLUXDB_INIT_ORG}")
FLUX
influx task create --org "${DOCKER_INFLUXDB_INIT_ORG}" --file "${task_file}"
rm -f "${task_file}"
