#!/bin/sh
# The test application: serve /www on port 8080 and stop at once on SIGTERM, as a well-behaved service does.
echo "rollout-app ${APP_VERSION} starting on $(uname -m)"
httpd -f -v -p 8080 -h /www &
pid=$!
trap 'kill "$pid"; exit 0' TERM INT
wait "$pid"
