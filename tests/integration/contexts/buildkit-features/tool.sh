#!/bin/sh
echo "machine $(uname -m)"
echo "cache-runs $(cat /cache-runs)"
echo "token-sha256 $(cat /token.sha256)"
