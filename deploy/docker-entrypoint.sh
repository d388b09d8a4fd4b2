#!/bin/sh
# Entrypoint of the alina image: for every ALINA_<NAME>_FILE variable, export ALINA_<NAME> with the
# content of that file (compose secrets are files under /run/secrets/), then run the command.
# The secret thus lives only in the process environment, never in the container's configuration.
# A named file that cannot be read stops the container (exit 2) instead of starting without it.
set -eu
for name in $(env | sed -n 's/^\(ALINA_[A-Z0-9_]*\)_FILE=.*$/\1/p'); do
  case "$name" in ALINA__*) continue ;; esac   # ALINA__SECTION__KEY are config overrides
  file=$(printenv "${name}_FILE")
  if [ ! -r "$file" ]; then
    echo "docker-entrypoint: ${name}_FILE names $file, which cannot be read" >&2
    exit 2
  fi
  value=$(cat "$file")
  export "$name=$value"
  unset "${name}_FILE"
done
exec "$@"
